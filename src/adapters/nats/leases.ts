import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { LeaseBackend } from '../broker/leases.ts';

/** The server's code for a publish whose expected last subject sequence was not the last: the compare-and-set lost. */
const WRONG_LAST_SEQUENCE = 10071;

/**
 * The stream that keeps a namespace's members and partition leases: a key-value bucket in all
 * but name (as JetStream's own KV is built: one message kept per subject), whose messages live
 * `leaseMs` after they were written, in the server's time (`max_age`). A plain stream rather than
 * the KV client (a package more for the same stream): the live members are listed in one request
 * (stream info by subject), and the compare-and-set is the header KV's `create()`/`update()` send.
 */
export function leaseStream(namespace: string, leaseMs: number): Partial<StreamConfig> & Pick<StreamConfig, 'name'> {
  const name = `${namespace}-leases`;
  return {
    name,
    subjects: [`${name}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: 1,
    discard: DiscardPolicy.Old,
    max_age: nanos(leaseMs),
    // Not used (no message ids here); the server refuses a window longer than max_age.
    duplicate_window: nanos(leaseMs),
  };
}

/**
 * One consumer's members and partition leases on NATS JetStream, in `stream`
 * (`<namespace>-leases`, see `leaseStream`): a member is the subject
 * `<stream>.<consumer>.members.<name in base64url>`, written every heartbeat and gone `leaseMs`
 * after the last (the server expires it); the live members are the subjects the stream holds.
 * A lease is `<stream>.<consumer>.lease.<p>`, whose last message names the holder (empty:
 * released). It is taken and renewed by publishing with `Nats-Expected-Last-Subject-Sequence`,
 * checked by the server: a take expects the subject empty (0: never held, expired) or its
 * release, a renewal expects this holder's last write, so that of two replicas racing for a
 * partition one wins. The take's stream sequence is the fencing epoch (it only grows).
 */
export function natsLeases({ js, jsm }: Readonly<{ js: JetStreamClient; jsm: JetStreamManager }>, stream: string, consumer: string, leaseMs: number): LeaseBackend {
  const members = `${stream}.${consumer}.members`;
  const member = (me: string) => `${members}.${Buffer.from(me).toString('base64url')}`;
  const lease = (p: number) => `${stream}.${consumer}.lease.${p}`;
  /** The stream sequence of this process's last write of each lease it holds. */
  const written = new Map<number, number>();
  const checkTtl = (ttlMs: number) => {
    if (ttlMs !== leaseMs) throw new Error(`NATS leases live ${leaseMs} ms (the stream's max_age), not ${ttlMs}`);
  };

  /** Writes `holder` to lease `p` if its last write is still `last` (0: none); false when another write came first. */
  async function write(p: number, holder: string, last: number): Promise<number | false> {
    try {
      return (await js.publish(lease(p), holder, { expect: { lastSubjectSequence: last } })).seq;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE) return false;
      throw error;
    }
  }

  /** Who holds lease `p` now ('' when nobody) and the sequence of its last write (0: none kept). */
  async function read(p: number): Promise<{ holder: string; seq: number }> {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: lease(p) });
    return m ? { holder: m.string(), seq: m.seq } : { holder: '', seq: 0 };
  }

  return {
    async heartbeat(me, ttlMs) {
      checkTtl(ttlMs);
      await js.publish(member(me), me);
      const info = await jsm.streams.info(stream, { subjects_filter: `${members}.*` });
      const live = Object.keys(info.state.subjects ?? {}).map((subject) => Buffer.from(subject.slice(members.length + 1), 'base64url').toString());
      return live.includes(me) ? live : [...live, me];
    },

    async hold(p, me, ttlMs) {
      checkTtl(ttlMs);
      const mine = written.get(p);
      if (mine !== undefined) {
        const seq = await write(p, me, mine);
        if (seq !== false) {
          written.set(p, seq);
          return 0;
        }
        written.delete(p);
      }
      // Not held here, or the renewal lost (expired while this process hung, or its last write's answer was lost).
      const now = await read(p);
      if (now.holder !== '' && now.holder !== me) return -1;
      const seq = await write(p, me, now.seq);
      if (seq === false) return -1;
      written.set(p, seq);
      return now.holder === me ? 0 : seq;
    },

    async release(p, me) {
      let last = written.get(p);
      written.delete(p);
      if (last === undefined) {
        const now = await read(p);
        if (now.holder !== me) return;
        last = now.seq;
      }
      await write(p, '', last);
    },

    async leave(me) {
      await jsm.streams.purge(stream, { filter: member(me) });
    },
  };
}
