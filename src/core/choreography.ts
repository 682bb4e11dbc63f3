/**
 * Choreography: the same saga definition, commanded by nobody. Each participant reacts to the
 * event of the step before its own by running its own command, and publishes the outcome as an
 * event that every interested service gets. A failure event starts the compensation of the
 * latest step that has one, and each compensation's event starts the one before it, so
 * compensations still run last-in-first-out. The saga's owner and the tracker only observe
 * (`observe` in saga.ts).
 *
 * Events carry the saga's context, so a participant needs nothing but the event to act.
 *
 * Nobody commands, but the owner keeps the saga's timer: when a step makes no progress for its
 * time-out (an event a broker lost, a participant that was down), the owner publishes again
 * the event that step reacts to (`retrigger`). Every participant is idempotent by saga id, so
 * whoever had already reacted answers the same again, and nothing happens twice.
 */
import type { ApiCommand, Decider, Decision } from './decider.ts';
import type { Envelope, Message, Outgoing, Parsed } from './message.ts';
import { isRecord, type Check } from './parse.ts';
import { cancellableUntil, type ActiveSaga, type Command, type SagaDefinition, type SagaReply } from './saga.ts';

/**
 * Payload of every choreography event: the saga's context, plus the outcome's details, and the
 * version of the definition the saga runs under (absent: version 1, from before versions).
 */
export type EventPayload<C> = Readonly<{
  ctx: C;
  detail?: string;
  reason?: string;
  version?: number;
  /** On an abort: the step its owner's saga was at when it aborted it. */
  abortedAt?: string;
}>;
export type ChoreographyEvent<C> = Message<string, EventPayload<C>>;

/**
 * The parser of a choreography's events of `types`: each must carry a context that passes
 * `ctxCheck`, and may carry a failure's detail and reason (strings).
 */
export function eventParser<C>(types: readonly string[], ctxCheck: Check): (message: Envelope) => Parsed<ChoreographyEvent<C>> {
  const known = new Set(types);
  return (message) => {
    const problem = !known.has(message.type)
      ? `is not an event this service takes (it takes ${types.join(', ')})`
      : eventProblem(message.payload, ctxCheck);
    // The one place an event becomes typed: its payload has just been checked.
    return problem === undefined ? { ok: true, message: message as Envelope<ChoreographyEvent<C>> } : { ok: false, problem: `${message.type}: ${problem}` };
  };
}

function eventProblem(payload: unknown, ctxCheck: Check): string | undefined {
  if (!isRecord(payload)) return 'the payload must be an object';
  const ctx = ctxCheck(payload.ctx);
  if (ctx !== undefined) return `ctx: ${ctx}`;
  if (payload.detail !== undefined && typeof payload.detail !== 'string') return 'detail must be a string';
  if (payload.reason !== undefined && typeof payload.reason !== 'string') return 'reason must be a string';
  if (payload.version !== undefined && (!Number.isSafeInteger(payload.version) || Number(payload.version) < 1)) return 'version must be a whole number from 1';
  if (payload.abortedAt !== undefined && typeof payload.abortedAt !== 'string') return 'abortedAt must be a string';
  return undefined;
}

/** "When `on` is published, `participant` runs `command` for `step`." */
export type Reaction<C> = Readonly<{
  on: string;
  participant: string;
  step: string;
  command: (ctx: C) => Command;
}>;

/**
 * The reactions that run `def` as a choreography. `started` is the event that starts it;
 * `aborted`, when given, the event by which its owner aborts it (cancel, time to live);
 * `participantOf` names who performs each step. Only the last group of steps may run
 * several steps at once: a group after it would have to wait for all of them, and
 * in choreography nobody is there to wait.
 */
export function reactions<C>(def: SagaDefinition<C>, started: string, participantOf: (step: string) => string, aborted?: string): Reaction<C>[] {
  const steps = def.steps;
  steps.forEach((step, i) => {
    if (step.concurrent && steps.slice(i + 1).some((s) => !s.concurrent)) {
      throw new Error(`Saga ${def.name}: step ${step.name} runs beside another, and only the last group may in choreography`);
    }
  });
  const out: Reaction<C>[] = [];
  const react = (on: string | undefined, step: string, command: (ctx: C) => Command) => {
    if (on !== undefined) out.push({ on, participant: participantOf(step), step, command });
  };
  // Actions: the first step on the start; every later one on the success of the single step
  // of the group before it (a concurrent step shares its group's trigger).
  let trigger = started;
  let previous: (typeof steps)[number] | undefined;
  for (const step of steps) {
    if (previous && !step.concurrent) trigger = previous.success;
    react(trigger, step.name, step.action);
    previous = step;
  }
  // Compensations, last-in-first-out: a step is undone on the failure of any later step that
  // has no compensable step between them, and on the compensation of the next compensable one.
  // An abort undoes every step that can be undone (up to where the saga can still be aborted),
  // starting with the latest.
  const undoable = steps.slice(0, aborted === undefined ? def.pivot : cancellableUntil(def));
  undoable.forEach((step, j) => {
    const compensation = step.compensation;
    if (!compensation) return;
    for (const later of undoable.slice(j + 1)) {
      react(later.failure, step.name, compensation.command);
      if (later.compensation) {
        react(later.compensation.done, step.name, compensation.command);
        return;
      }
    }
    // The latest step that can be undone: the abort starts here.
    react(aborted, step.name, compensation.command);
  });
  return out;
}

/**
 * A participant's decider in choreography: it consumes the events its reactions name, turns
 * each into the command it would have been sent in orchestration, decides that with the
 * unchanged `inner` decider, and publishes the replies as events with the context (and the
 * saga's version) attached. `byVersion` holds its reactions under each version of the saga's
 * definition: an event reacts as the version its saga runs under says, and an event its
 * version has no reaction to is taken and does nothing. Its API is `inner`'s, as it is.
 * `ctxCheck` checks the context an event carries.
 */
export function reacting<C, M extends Message, A extends ApiCommand>(inner: Decider<M, A>, byVersion: ReadonlyMap<number, readonly Reaction<C>[]>, ctxCheck: Check): Decider<ChoreographyEvent<C>, A> {
  const tables = new Map<number, Map<string, Reaction<C>>>();
  for (const [version, mine] of byVersion) {
    const byEvent = new Map<string, Reaction<C>>();
    for (const reaction of mine) {
      if (byEvent.has(reaction.on)) throw new Error(`Two reactions of ${reaction.participant} to ${reaction.on} in version ${version}`);
      byEvent.set(reaction.on, reaction);
    }
    tables.set(version, byEvent);
  }
  const types = [...new Set([...tables.values()].flatMap((byEvent) => [...byEvent.keys()]))];
  const parseEvent = eventParser<C>(types, ctxCheck);
  const reactionTo = (event: Envelope<ChoreographyEvent<C>>) => tables.get(event.payload.version ?? 1)?.get(event.type);
  /** The command `event` stands for, checked as `inner` checks what it consumes; none when its version has no reaction to it. */
  const commandOf = (event: Envelope<ChoreographyEvent<C>>): (Parsed<M> & { step: string }) | undefined => {
    const reaction = reactionTo(event);
    if (!reaction) return undefined;
    const command = reaction.command(event.payload.ctx);
    return { ...inner.parse({ ...event, type: command.type, step: reaction.step, payload: command.payload }), step: reaction.step };
  };
  /** A command of an event `parse` accepted; one that is not is a bug. */
  const checkedCommandOf = (event: Envelope<ChoreographyEvent<C>>) => {
    const command = commandOf(event);
    if (command && !command.ok) throw new Error(`${event.type} was accepted but makes no command: ${command.problem}`);
    return command?.ok ? { message: command.message, step: command.step } : undefined;
  };

  return {
    consumes: types,

    parse(message) {
      const event = parseEvent(message);
      if (!event.ok) return event;
      const command = commandOf(event.message);
      return !command || command.ok ? event : { ok: false, problem: `${message.type}: ${command.problem}` };
    },

    keys: (event) => {
      const command = checkedCommandOf(event);
      return command ? inner.keys(command.message) : [];
    },

    decide(event, read, now): Decision {
      const command = checkedCommandOf(event);
      if (!command) return {};
      const { message, step } = command;
      const decision = inner.decide(message, read, now);
      const { ctx, version } = event.payload;
      // Ids name the step: two participants reacting to one event must not publish the same id.
      const send = (decision.send ?? []).map((out, i): Outgoing => ({
        ...out,
        id: `${event.id}>${step}.${i}`,
        step,
        payload: { ...(isRecord(out.payload) ? out.payload : {}), ctx, ...(version === undefined ? {} : { version }) },
      }));
      return { ...decision, send };
    },

    api: inner.api,
  };
}

/**
 * The events that make the stalled part of an active saga go on: for a running saga, what
 * each awaited step reacts to (the start, or the success of the step before it); for a
 * compensating one, what the pending compensation reacts to (the failure or the abort that
 * started the compensation, or the compensation after it), with the failure's detail.
 */
export function retrigger<C>(def: SagaDefinition<C>, started: string, state: ActiveSaga<C>, aborted?: string): SagaReply[] {
  const steps = def.steps;
  if (state.status === 'running') {
    const first = state.step;
    if (first === 0) return [{ type: started, step: '' }];
    const before = steps[first - 1]!;
    return [{ type: before.success, step: before.name }];
  }
  // The latest failure, abort or compensation is what the pending compensation waits on.
  const last = [...state.history].reverse().find((e) => e.event === 'failed' || e.event === 'compensated' || e.event === 'aborted');
  if (last?.event === 'aborted') return aborted === undefined ? [] : [{ type: aborted, step: '', detail: last.detail ?? state.reason }];
  const step = steps.find((s) => s.name === last?.step);
  if (!last || !step) return [];
  const type = last.event === 'failed' ? step.failure : step.compensation?.done;
  if (type === undefined) return [];
  return [last.detail === undefined ? { type, step: step.name } : { type, step: step.name, detail: last.detail }];
}
