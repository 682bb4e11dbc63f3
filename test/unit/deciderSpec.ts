/**
 * One given/when/then harness for every decider: given these documents, when this message
 * arrives (checked by the decider's `parse` first, as the runtime does) or this API command
 * runs, then these documents are written, these messages sent, these timers cancelled and this
 * reply given. Envelopes sent are built as the runtime builds them (envelopesFrom).
 */
import assert from 'node:assert/strict';
import type { ApiCommand, Decider, Decision, Read, Reply } from '../../src/core/decider.ts';
import { envelopesFrom, type Cause, type Envelope, type Message, type Outgoing } from '../../src/core/message.ts';

export const NOW = 1_700_000_000_000;

export type Docs = Readonly<Record<string, unknown>>;
export type Then = Readonly<{ writes?: Docs; send?: readonly Outgoing[]; cancel?: readonly string[]; reply?: Reply }>;

/** An API command as the runtime runs it: the command, and the cause its messages name. */
export type ApiInput<C extends ApiCommand> = Readonly<{ kind: 'command'; command: C; cause: Cause }>;
export const apiCommand = <C extends ApiCommand>(command: C, correlationId = '', id = 'cmd:1'): ApiInput<C> =>
  ({ kind: 'command', command, cause: { id, correlationId } });

export type Input<C extends ApiCommand> = Envelope | ApiInput<C>;

/** One decision: what it decided, the documents after it and the envelopes it sent. */
export type Step = Readonly<{ decision: Decision; docs: Docs; sent: readonly Envelope[] }>;

const isCommand = <C extends ApiCommand>(input: Input<C>): input is ApiInput<C> => 'kind' in input && input.kind === 'command';

export function deciderSpec<M extends Message, C extends ApiCommand>(decider: Decider<M, C>) {
  /** The keys the decider names for `input` (a message must pass its check). */
  const keys = (input: Input<C>): readonly string[] => {
    if (isCommand(input)) return decider.api.keys(input.command);
    const parsed = decider.parse(input);
    assert.ok(parsed.ok, `${input.type} should pass the decider's check: ${parsed.ok ? '' : parsed.problem}`);
    return decider.keys(parsed.message);
  };

  const decide = (docs: Docs, input: Input<C>, now = NOW): Step => {
    const named = new Set(keys(input));
    const type = isCommand(input) ? input.command.type : input.type;
    const read: Read = <T>(key: string): T | undefined => {
      assert.ok(named.has(key), `${type} read ${key}, which keys() did not name`);
      return docs[key] as T | undefined;
    };
    let decision: Decision;
    if (isCommand(input)) decision = decider.api.decide(input.command, read, now);
    else {
      const parsed = decider.parse(input);
      assert.ok(parsed.ok);
      decision = decider.decide(parsed.message, read, now);
    }
    const after: Record<string, unknown> = { ...docs };
    for (const [key, doc] of Object.entries(decision.writes ?? {})) {
      if (doc === null) delete after[key];
      else after[key] = doc;
    }
    const cause = isCommand(input) ? input.cause : input;
    return { decision, docs: after, sent: envelopesFrom(cause, decision.send ?? [], now) };
  };

  const given = (docs: Docs) => ({
    when(input: Input<C>, now = NOW) {
      const step = decide(docs, input, now);
      return {
        ...step,
        /** Asserts the whole decision (absent parts: nothing). */
        then(expected: Then): Step {
          assert.deepEqual(step.decision.writes ?? {}, expected.writes ?? {}, 'writes');
          assert.deepEqual(step.decision.send ?? [], expected.send ?? [], 'send');
          assert.deepEqual(step.decision.cancel ?? [], expected.cancel ?? [], 'cancel');
          assert.deepEqual(step.decision.reply, expected.reply, 'reply');
          return step;
        },
      };
    },
  });

  return { decider, keys, decide, given, consumes: decider.consumes };
}
