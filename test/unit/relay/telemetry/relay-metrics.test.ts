import { describe, expect, it } from 'vitest';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createRelayMetrics } from '../../../../relay/telemetry/relay-metrics.js';
import { SECURITY_PROFILES } from '../../../../src/telemetry/labels.js';
import { parseExposition, sumOf } from '../../../support/prometheus-exposition.js';

const gauges = () => ({ router: { executorCount: 0, streamCount: 0 } });
const PROFILED = [
  'execrelay_relay_stream_opens_total',
  'execrelay_relay_streams_accepted_total',
  'execrelay_relay_stream_closes_total',
  'execrelay_relay_frames_routed_total',
  'execrelay_relay_bytes_routed_total',
  'execrelay_relay_stream_handshake_duration_seconds_count',
  'execrelay_relay_stream_handshake_duration_seconds_bucket',
];

describe('relay metrics: the security_profile label', () => {
  it('exports every profiled series for both profiles at 0 before any stream, and the same series after', async () => {
    const metrics = createRelayMetrics(gauges);
    const keys = (text: string) => parseExposition(text).map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
    const fresh = await metrics.expose();
    const samples = parseExposition(fresh);
    for (const name of PROFILED) {
      const values = new Set(samples.filter((s) => s.name === name).map((s) => s.labels.security_profile));
      expect([...values].sort(), name).toEqual([...SECURITY_PROFILES].sort());
      expect(sumOf(samples, name), name).toBe(0);
    }
    metrics.events.streamOpened('pq_hybrid');
    metrics.events.streamAccepted(12, 'pq_hybrid');
    metrics.events.frameRouted('client_to_executor', 100, 'pq_hybrid');
    metrics.events.streamEnded('reset', 'pq_hybrid');
    metrics.events.streamOpened('classical');
    expect(keys(await metrics.expose())).toEqual(keys(fresh));
  });

  it('counts each stream, handshake and frame under the profile it is reported with, and no other', async () => {
    const metrics = createRelayMetrics(gauges);
    metrics.events.streamOpened('pq_hybrid');
    metrics.events.streamOpened('pq_hybrid');
    metrics.events.streamOpened('classical');
    metrics.events.streamAccepted(250, 'pq_hybrid');
    metrics.events.frameRouted('executor_to_client', 1000, 'pq_hybrid');
    metrics.events.frameRouted('executor_to_client', 7, 'classical');
    metrics.events.streamEnded('closed', 'classical');
    const samples = parseExposition(await metrics.expose());
    const at = (name: string, labels: Record<string, string>) => sumOf(samples, name, labels);
    expect(at('execrelay_relay_stream_opens_total', { security_profile: 'pq_hybrid' })).toBe(2);
    expect(at('execrelay_relay_stream_opens_total', { security_profile: 'classical' })).toBe(1);
    expect(at('execrelay_relay_streams_accepted_total', { security_profile: 'pq_hybrid' })).toBe(1);
    expect(at('execrelay_relay_streams_accepted_total', { security_profile: 'classical' })).toBe(0);
    expect(at('execrelay_relay_stream_handshake_duration_seconds_sum', { security_profile: 'pq_hybrid' })).toBeCloseTo(0.25);
    expect(at('execrelay_relay_stream_handshake_duration_seconds_count', { security_profile: 'classical' })).toBe(0);
    expect(at('execrelay_relay_bytes_routed_total', { security_profile: 'pq_hybrid', direction: 'executor_to_client' })).toBe(1000);
    expect(at('execrelay_relay_bytes_routed_total', { security_profile: 'classical', direction: 'executor_to_client' })).toBe(7);
    expect(at('execrelay_relay_stream_closes_total', { security_profile: 'classical', result: 'closed' })).toBe(1);
    expect(at('execrelay_relay_stream_closes_total', { security_profile: 'pq_hybrid' })).toBe(0);
  });

  it('puts the profile on the stream spans as execrelay.security_profile', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const metrics = createRelayMetrics(gauges, { tracer: provider.getTracer('test') });
    metrics.events.streamAccepted(5, 'pq_hybrid');
    metrics.events.streamEnded('closed', 'classical');
    metrics.events.registration('registered');
    const spans = exporter.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes }));
    expect(spans).toEqual([
      { name: 'relay.stream.handshake', attributes: { 'execrelay.result': 'accepted', 'execrelay.security_profile': 'pq_hybrid' } },
      { name: 'relay.stream.end', attributes: { 'execrelay.result': 'closed', 'execrelay.security_profile': 'classical' } },
      { name: 'relay.registration', attributes: { 'execrelay.result': 'registered' } },
    ]);
  });
});
