/**
 * Tracing (OpenTelemetry): one checkout is one trace, from the HTTP request through the order
 * service, the bus and the participants and back. The W3C `traceparent` of the span that made
 * a message travels in its envelope (every bus and every outbox keep it, since they keep the
 * whole envelope), so a consumer's span continues the producer's trace in any process.
 *
 * Off unless `startTracing` ran (OTEL_EXPORTER_OTLP_ENDPOINT set, or a test's exporter): then
 * no SDK is loaded, every function below returns at its first check, and no message carries a
 * traceparent. Like metrics.ts, a leaf: it knows the core only.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { Sampler, SamplingResult, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { sagasOf, type Envelope } from '../core/message.ts';

export type TracingSettings = Readonly<{
  /** `service.name` of this process's spans (orderly, orderly-orders, orderly-gateway, …). */
  serviceName: string;
  /** OTLP/HTTP endpoint (traces go to `<endpoint>/v1/traces`); or: */
  endpoint?: string | undefined;
  /** An exporter of the test's own (the SDK's InMemorySpanExporter), which gets every span as it ends. */
  exporter?: SpanExporter;
  /** Which traces begun here are recorded (default: every one, up to 20 a second). */
  sampling?: TraceSampling;
}>;

/**
 * Which traces begun here (a request without a sampled traceparent) are recorded: every one up
 * to `perSecond` a second, or a share of them (`ratio`, 0 to 1). The others cost only their trace
 * context; a caller's decision is kept.
 */
export type TraceSampling = Readonly<{ perSecond: number } | { ratio: number }>;

/** The default: every trace, up to 20 a second (ORDERLY_TRACES_PER_SECOND). */
export const DEFAULT_TRACES_PER_SECOND = 20;

/** A span that is under way, its context, and its traceparent (what a message it causes carries). */
export type Traced = Readonly<{ span: Span; context: Context; traceparent: string }>;

/** Parses and writes `traceparent` (and reads trace ids for logs) whether tracing is on or not. */
const w3c = new W3CTraceContextPropagator();
let tracer: Tracer | undefined;

/**
 * Starts the SDK: spans of this process go, in batches, to the OTLP endpoint (or to the given
 * exporter, one by one). Returns what flushes and stops it; undefined (and does nothing) when
 * neither is given.
 */
export async function startTracing(settings: TracingSettings): Promise<{ shutdown(): Promise<void> } | undefined> {
  if (settings.endpoint === undefined && settings.exporter === undefined) return undefined;
  // Loaded only now: a process without tracing never loads the SDK.
  const [{ NodeTracerProvider }, { BatchSpanProcessor, SimpleSpanProcessor, ParentBasedSampler, SamplingDecision, TraceIdRatioBasedSampler }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'), import('@opentelemetry/sdk-trace-base'), import('@opentelemetry/resources'), import('@opentelemetry/semantic-conventions'),
  ]);
  let processor;
  if (settings.exporter !== undefined) processor = new SimpleSpanProcessor(settings.exporter);
  else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    // A busy process makes thousands of spans a second: a large queue, sent every second.
    processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: `${settings.endpoint}/v1/traces` }), {
      maxQueueSize: 32_768, maxExportBatchSize: 4_096, scheduledDelayMillis: 1_000,
    });
  }
  const sampling = settings.sampling ?? { perSecond: DEFAULT_TRACES_PER_SECOND };
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }),
    spanProcessors: [processor],
    sampler: new ParentBasedSampler({ root: 'ratio' in sampling ? new TraceIdRatioBasedSampler(sampling.ratio) : rateLimited(sampling.perSecond, SamplingDecision) }),
  });
  // AsyncLocalStorage carries an HTTP request's span to the commands its route runs.
  provider.register({ propagator: w3c });
  tracer = provider.getTracer('orderly');
  return {
    async shutdown() {
      tracer = undefined;
      await provider.shutdown();
    },
  };
}

/**
 * Records every trace begun here up to `perSecond` a second, then none until the budget refills
 * (a token bucket), as AWS X-Ray's and Jaeger's rate-limiting samplers do: someone trying a few
 * checkouts sees every one, and a load test pays for a bounded number of traces (each recorded
 * checkout costs about 0.8 ms of CPU: docs/observability.md).
 */
function rateLimited(perSecond: number, decisions: { NOT_RECORD: SamplingResult['decision']; RECORD_AND_SAMPLED: SamplingResult['decision'] }): Sampler {
  let tokens = perSecond;
  let last = performance.now();
  return {
    shouldSample() {
      const now = performance.now();
      tokens = Math.min(perSecond, tokens + ((now - last) / 1000) * perSecond);
      last = now;
      if (tokens < 1) return { decision: decisions.NOT_RECORD };
      tokens -= 1;
      return { decision: decisions.RECORD_AND_SAMPLED };
    },
    toString: () => `RateLimited{${perSecond}/s}`,
  };
}

/** Whether spans are being made (for the HTTP edges, which add their hooks only then). */
export const tracingOn = (): boolean => tracer !== undefined;

type Carrier = { traceparent?: string };
const setter = { set: (c: Carrier, key: string, value: string) => { if (key === 'traceparent') c.traceparent = value; } };
const getter = { get: (c: Carrier, key: string) => (key === 'traceparent' ? c.traceparent : undefined), keys: () => ['traceparent'] };

const traceparentOf = (ctx: Context): string => {
  const carrier: Carrier = {};
  w3c.inject(ctx, carrier, setter);
  return carrier.traceparent ?? '';
};

const contextOf = (traceparent: string): Context => w3c.extract(ROOT_CONTEXT, { traceparent }, getter);

/**
 * Whether a traceparent's flags say its trace is recorded (sampled), read off its last two hex
 * digits without parsing the rest: a message of a trace not recorded (most of them, under
 * sampling) then costs nothing more here.
 */
const recorded = (traceparent: string): boolean => (Number.parseInt(traceparent.slice(-2), 16) & TraceFlags.SAMPLED) !== 0;

/**
 * A child span of `parent`; when `parent` is a trace that is not recorded (not sampled), no span
 * at all: the context goes on as it came (`traceparent`, when the caller has it as a string).
 */
function started(t: Tracer, name: string, kind: SpanKind, attributes: Attributes, parent: Context, traceparent?: string): Traced {
  const context = trace.getSpanContext(parent);
  if (context !== undefined && (context.traceFlags & TraceFlags.SAMPLED) === 0) {
    return { span: trace.wrapSpanContext(context), context: parent, traceparent: traceparent ?? traceparentOf(parent) };
  }
  const span = t.startSpan(name, { kind, attributes }, parent);
  const ctx = trace.setSpan(parent, span);
  return { span, context: ctx, traceparent: traceparentOf(ctx) };
}

/** Ends a span; an error marks it failed. */
export function endSpan(traced: Traced | undefined, error?: unknown): void {
  if (traced !== undefined) finish(traced.span, error);
}

function finish(span: Span, error: unknown): void {
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/** A command of a service's API, as a child of the active span (the HTTP request that runs it). */
export function commandSpan(service: string, type: string, correlationId: string): Traced | undefined {
  if (tracer === undefined) return undefined;
  return started(tracer, `${service} ${type}`, SpanKind.INTERNAL, { 'orderly.service': service, 'orderly.correlation_id': correlationId }, context.active());
}

/**
 * A message handled by a service (`consume`: from the bus; `call`: a synchronous saga call), as
 * a child of the span that sent it. Undefined for a message without a traceparent or of a trace not recorded.
 */
export function messageSpan(service: string, message: Envelope, how: 'consume' | 'call'): Traced | undefined {
  // Not recorded: no span, and what it causes carries its traceparent as it came.
  if (tracer === undefined || message.traceparent === undefined || !recorded(message.traceparent)) return undefined;
  // Few attributes: each costs on every span made and sent (the name says the message type).
  return started(tracer, `${service} ${how} ${message.type}`, how === 'consume' ? SpanKind.CONSUMER : SpanKind.SERVER, {
    'orderly.service': service, 'orderly.saga_id': message.sagaId, 'messaging.message.id': message.id,
  }, contextOf(message.traceparent), message.traceparent);
}

/**
 * The store transaction that committed some traced work. A transaction commits the work of
 * many checkouts together (group commit): as OpenTelemetry's messaging conventions do for a
 * batch, it is one span, in the trace of the batch's first traced work, linked to the others.
 */
export function storeSpan(service: string, work: readonly (Traced | undefined)[], startMs: number, endMs: number, error?: unknown): void {
  if (tracer === undefined) return;
  const traced = work.filter((w): w is Traced => w !== undefined && w.span.isRecording());
  const [first, ...others] = traced;
  if (first === undefined) return;
  const span = tracer.startSpan(`${service} store transaction`, {
    kind: SpanKind.CLIENT, startTime: startMs, attributes: { 'orderly.service': service, 'orderly.batch': work.length },
    links: others.map((w) => ({ context: w.span.spanContext() })),
  }, first.context);
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.end(endMs);
}

/**
 * The outbox relay handing a batch of messages to the bus: one producer span for the batch, as
 * OpenTelemetry's messaging conventions do for a batch send, in the trace of its first recorded
 * message and linked to the others (a span per message was a third of all spans, and their cost).
 * The messages keep the traceparent of the span that committed them, so each consumer continues
 * its own checkout's trace. Returns what ends the span when the bus has the messages; undefined
 * when none of them is in a recorded trace.
 */
export function publishSpan(service: string, messages: readonly Envelope[]): ((error?: unknown) => void) | undefined {
  if (tracer === undefined) return undefined;
  const contexts = messages.flatMap((m) => (m.traceparent !== undefined && recorded(m.traceparent) ? trace.getSpanContext(contextOf(m.traceparent)) ?? [] : []));
  const [first, ...others] = contexts;
  if (first === undefined) return undefined;
  const types = new Set(messages.map((m) => m.type));
  const span = tracer.startSpan(`${service} publish ${types.size === 1 ? messages[0]?.type : `${messages.length} messages`}`, {
    kind: SpanKind.PRODUCER,
    attributes: { 'orderly.service': service, 'messaging.operation.type': 'send', 'messaging.batch.message_count': messages.length },
    links: others.map((context) => ({ context })),
  }, trace.setSpanContext(ROOT_CONTEXT, first));
  return (error) => finish(span, error);
}

/**
 * An HTTP request a server (a service's API or the gateway) answers, continuing the caller's
 * trace when its headers carry one. End it with `endServerSpan`.
 */
export function serverSpan(method: string, route: string, headers: Readonly<Record<string, string | string[] | undefined>>, attributes: Attributes): Traced | undefined {
  if (tracer === undefined) return undefined;
  const parent = w3c.extract(ROOT_CONTEXT, headers, { get: (h, key) => h[key], keys: (h) => Object.keys(h) });
  return started(tracer, `${method} ${route}`, SpanKind.SERVER, { 'http.request.method': method, 'http.route': route, ...attributes }, parent);
}

export function endServerSpan(traced: Traced | undefined, status: number): void {
  if (traced === undefined) return;
  traced.span.setAttribute('http.response.status_code', status);
  if (status >= 500) traced.span.setStatus({ code: SpanStatusCode.ERROR });
  traced.span.end();
}

/** Runs `fn` with `traced` as the active span (what `commandSpan` and `outgoingHeaders` continue). */
export function withSpan<T>(traced: Traced, fn: () => T): T {
  return context.with(traced.context, fn);
}

/** Headers that continue the active span's trace in an outgoing HTTP request (none when tracing is off). */
export function outgoingHeaders(headers: Record<string, string>): Record<string, string> {
  if (tracer === undefined) return headers;
  propagation.inject(context.active(), headers);
  return headers;
}

/** The trace id in a traceparent, for log lines (undefined when there is none). */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  return trace.getSpanContext(contextOf(traceparent))?.traceId;
}

/** What a log line about one message carries: its id and type, its saga, its business transaction and its trace. */
export function aboutMessage(message: Envelope): Readonly<{ messageId: string; type: string; sagaId: string; step: string; correlationId: string; traceId?: string }> {
  const traceId = traceIdOf(message.traceparent);
  const about = { messageId: message.id, type: message.type, sagaId: message.sagaId, step: message.step, correlationId: message.correlationId };
  return traceId === undefined ? about : { ...about, traceId };
}

/** What a log line about some messages carries: their sagas, business transactions (correlation ids) and traces. */
export function aboutMessages(messages: readonly Envelope[] | undefined): Readonly<{ sagaIds?: string[]; correlationIds?: string[]; traceIds?: string[] }> {
  const sagas = sagasOf(messages);
  const traceIds = [...new Set((messages ?? []).flatMap((m) => traceIdOf(m.traceparent) ?? []))];
  return traceIds.length === 0 ? sagas : { ...sagas, traceIds };
}
