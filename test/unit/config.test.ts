import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';

// The tracing and log settings, parsed once at start-up.

test('tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set', () => {
  assert.equal(loadConfig({}).otlpEndpoint, undefined);
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }).otlpEndpoint, undefined);
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }).otlpEndpoint, 'http://127.0.0.1:4318');
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4318' }).otlpEndpoint, 'https://collector.example:4318');
});

test('an endpoint that is not an http(s) URL stops the start with a message', () => {
  assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }), (e: unknown) => e instanceof ConfigError && /OTLP\/HTTP/.test(e.message));
  assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }), ConfigError);
  assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://127.0.0.1:4317' }), ConfigError);
});

test('LOG_FORMAT: auto by default, json or pretty when asked', () => {
  assert.equal(loadConfig({}).logFormat, 'auto');
  assert.equal(loadConfig({ LOG_FORMAT: 'json' }).logFormat, 'json');
  assert.equal(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat, 'pretty');
  assert.throws(() => loadConfig({ LOG_FORMAT: 'xml' }), ConfigError);
});

test('trace sampling: every trace up to 20 a second by default; so many a second, or a share from 0 to 1, when asked', () => {
  assert.deepEqual(loadConfig({}).traceSampling, { perSecond: 20 });
  assert.deepEqual(loadConfig({ ORDERLY_TRACES_PER_SECOND: '500' }).traceSampling, { perSecond: 500 });
  assert.deepEqual(loadConfig({ ORDERLY_TRACE_SAMPLE_RATIO: '0.1' }).traceSampling, { ratio: 0.1 });
  assert.deepEqual(loadConfig({ ORDERLY_TRACE_SAMPLE_RATIO: '0' }).traceSampling, { ratio: 0 });
  assert.deepEqual(loadConfig({ ORDERLY_TRACE_SAMPLE_RATIO: '1' }).traceSampling, { ratio: 1 });
  for (const bad of ['1.5', '-0.1', 'half', '1e-2']) assert.throws(() => loadConfig({ ORDERLY_TRACE_SAMPLE_RATIO: bad }), ConfigError, bad);
  for (const bad of ['0', '2.5', 'many']) assert.throws(() => loadConfig({ ORDERLY_TRACES_PER_SECOND: bad }), ConfigError, bad);
  assert.throws(() => loadConfig({ ORDERLY_TRACE_SAMPLE_RATIO: '1', ORDERLY_TRACES_PER_SECOND: '5' }), /both set: set one/);
});

test('ORDERLY_API_TOKEN: none by default (the shop API is open), else comma-separated keys of 16 characters or more', () => {
  assert.deepEqual(loadConfig({}).apiTokens, []);
  assert.deepEqual(loadConfig({ ORDERLY_API_TOKEN: 'first-key-0123456789, second-key-0123456789' }).apiTokens, ['first-key-0123456789', 'second-key-0123456789']);
  assert.throws(() => loadConfig({ ORDERLY_API_TOKEN: 'first-key-0123456789,short' }), (e: unknown) => e instanceof ConfigError && /ORDERLY_API_TOKEN/.test(e.message));
});

test('ORDERLY_ALLOWED_HOSTS: the loopback names while HOST is loopback, any host otherwise, or the names given', () => {
  assert.deepEqual(loadConfig({}).allowedHosts, ['localhost', '*.localhost', '127.0.0.1', '::1']);
  assert.equal(loadConfig({ HOST: '0.0.0.0' }).allowedHosts, 'any');
  assert.deepEqual(loadConfig({ ORDERLY_ALLOWED_HOSTS: 'Shop.Example, *.internal' }).allowedHosts, ['shop.example', '*.internal']);
  assert.equal(loadConfig({ ORDERLY_ALLOWED_HOSTS: '*' }).allowedHosts, 'any');
  assert.throws(() => loadConfig({ ORDERLY_ALLOWED_HOSTS: 'shop.example:8080' }), (e: unknown) => e instanceof ConfigError && /without ports/.test(e.message));
});

test('ORDERLY_FIXTURES: on, off, or unset (the process decides); ORDERLY_MAX_EVENT_STREAMS: 1,000 by default', () => {
  assert.equal(loadConfig({}).fixtures, undefined);
  assert.equal(loadConfig({ ORDERLY_FIXTURES: 'on' }).fixtures, true);
  assert.equal(loadConfig({ ORDERLY_FIXTURES: 'off' }).fixtures, false);
  assert.throws(() => loadConfig({ ORDERLY_FIXTURES: 'maybe' }), ConfigError);
  assert.equal(loadConfig({}).maxEventStreams, 1000);
  assert.equal(loadConfig({ ORDERLY_MAX_EVENT_STREAMS: '5' }).maxEventStreams, 5);
});
