import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsNames } from '../../src/adapters/nats/bus.ts';

/**
 * What a NATS JetStream server holds for a namespace, for a failing test to print: the stream's
 * messages by subject, and each durable that still has messages to deliver or unacknowledged
 * ones (a message that is in neither was stored and acked, or never stored).
 */
export async function natsState(url: string, namespace: string): Promise<string> {
  const nc = await connect({ servers: url, reconnect: false, timeout: 3000 });
  try {
    const jsm = await jetstreamManager(nc);
    const { stream } = natsNames(namespace);
    const { state } = await jsm.streams.info(stream, { subjects_filter: '>' });
    const lines = [`stream ${stream}: ${state.messages} messages (sequences ${state.first_seq}-${state.last_seq}) by subject ${JSON.stringify(state.subjects ?? {})}`];
    for await (const c of jsm.consumers.list(stream)) {
      if (c.num_pending > 0 || c.num_ack_pending > 0) {
        lines.push(`durable ${c.name}: ${c.num_pending} to deliver, ${c.num_ack_pending} unacknowledged, ${c.num_redelivered} redelivered, ${c.num_waiting} pull requests; delivered up to ${c.delivered.stream_seq}, acked up to ${c.ack_floor.stream_seq}`);
      }
    }
    return lines.join('\n');
  } finally {
    await nc.close();
  }
}
