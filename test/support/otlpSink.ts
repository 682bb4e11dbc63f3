import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as an OTLP/HTTP JSON export carries it, with its process's service.name. */
export type SinkSpan = Readonly<{ service: string; traceId: string; spanId: string; parentSpanId: string; name: string; attributes: Readonly<Record<string, unknown>> }>;

type AnyValue = Readonly<{ stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number }>;
type KeyValue = Readonly<{ key: string; value: AnyValue }>;
type Export = Readonly<{
  resourceSpans?: readonly Readonly<{
    resource?: Readonly<{ attributes?: readonly KeyValue[] }>;
    scopeSpans?: readonly Readonly<{ spans?: readonly Readonly<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: readonly KeyValue[] }>[] }>[];
  }>[];
}>;

const valueOf = (v: AnyValue): unknown => v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
const attributesOf = (list: readonly KeyValue[] | undefined) => Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]));

/**
 * A collector for tests: an HTTP server taking OTLP/HTTP JSON exports at /v1/traces (what
 * @opentelemetry/exporter-trace-otlp-http sends) and keeping their spans.
 */
export async function startOtlpSink() {
  const spans: SinkSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Export;
        for (const resource of body.resourceSpans ?? []) {
          const service = String(attributesOf(resource.resource?.attributes)['service.name']);
          for (const scope of resource.scopeSpans ?? []) {
            for (const s of scope.spans ?? []) spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, attributes: attributesOf(s.attributes) });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
