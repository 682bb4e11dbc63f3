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
import type { Decider, Decision } from './decider.ts';
import type { Envelope, Outgoing } from './message.ts';
import type { ActiveSaga, Command, SagaDefinition, SagaReply } from './saga.ts';

/** Payload of every choreography event: the saga's context, plus the outcome's details. */
export type EventPayload<C> = Readonly<{ ctx: C; detail?: string; reason?: string }>;

/** "When `on` is published, `participant` runs `command` for `step`." */
export type Reaction<C> = Readonly<{
  on: string;
  participant: string;
  step: string;
  command: (ctx: C) => Command;
}>;

/**
 * The reactions that run `def` as a choreography. `started` is the event that starts it;
 * `participantOf` names who performs each step. Only the last group of steps may run
 * several steps at once: a group after it would have to wait for all of them, and
 * in choreography nobody is there to wait.
 */
export function reactions<C>(def: SagaDefinition<C>, started: string, participantOf: (step: string) => string): Reaction<C>[] {
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
  steps.forEach((step, i) => {
    if (i > 0 && !step.concurrent) trigger = steps[i - 1]!.success;
    react(trigger, step.name, step.action);
  });
  // Compensations, last-in-first-out: step j is undone on the failure of any later step that
  // has no compensable step between them, and on the compensation of the next compensable one.
  for (let j = 0; j < def.pivot; j++) {
    const compensation = steps[j]!.compensation;
    if (!compensation) continue;
    for (let k = j + 1; k < def.pivot; k++) {
      react(steps[k]!.failure, steps[j]!.name, compensation.command);
      if (steps[k]!.compensation) {
        react(steps[k]!.compensation!.done, steps[j]!.name, compensation.command);
        break;
      }
    }
  }
  return out;
}

/**
 * A participant's decider in choreography: it consumes the events its reactions name, turns
 * each into the command it would have been sent in orchestration, decides that with the
 * unchanged `inner` decider, and publishes the replies as events with the context attached.
 * Everything else (its HTTP API) goes to `inner` as it is.
 */
export function reacting<C>(inner: Decider, mine: readonly Reaction<C>[]): Decider {
  const byEvent = new Map<string, Reaction<C>>();
  for (const reaction of mine) {
    if (byEvent.has(reaction.on)) throw new Error(`Two reactions of ${reaction.participant} to ${reaction.on}`);
    byEvent.set(reaction.on, reaction);
  }
  const commandOf = (event: Envelope, reaction: Reaction<C>): Envelope => {
    const command = reaction.command((event.payload as EventPayload<C>).ctx);
    return { ...event, type: command.type, step: reaction.step, payload: command.payload };
  };

  return {
    consumes: [...byEvent.keys()],

    keys(message) {
      const reaction = byEvent.get(message.type);
      return inner.keys(reaction ? commandOf(message, reaction) : message);
    },

    decide(message, read, now): Decision {
      const reaction = byEvent.get(message.type);
      if (!reaction) return inner.decide(message, read, now);
      const decision = inner.decide(commandOf(message, reaction), read, now);
      const { ctx } = message.payload as EventPayload<C>;
      // Ids name the step: two participants reacting to one event must not publish the same id.
      const send = (decision.send ?? []).map((out, i): Outgoing => ({
        ...out,
        id: `${message.id}>${reaction.step}.${i}`,
        step: reaction.step,
        payload: { ...(out.payload as object), ctx },
      }));
      return { ...decision, send };
    },
  };
}

/**
 * The events that make the stalled part of an active saga go on: for a running saga, what
 * each awaited step reacts to (the start, or the success of the step before it); for a
 * compensating one, what the pending compensation reacts to (the failure that started the
 * compensation, or the compensation after it), with the failure's detail.
 */
export function retrigger<C>(def: SagaDefinition<C>, started: string, state: ActiveSaga<C>): SagaReply[] {
  const steps = def.steps;
  if (state.status === 'running') {
    const first = state.step;
    if (first === 0) return [{ type: started, step: '' }];
    const before = steps[first - 1]!;
    return [{ type: before.success, step: before.name }];
  }
  // The latest failure or compensation is what the pending compensation waits on.
  const last = [...state.history].reverse().find((e) => e.event === 'failed' || e.event === 'compensated');
  const step = steps.find((s) => s.name === last?.step);
  if (!last || !step) return [];
  const type = last.event === 'failed' ? step.failure : step.compensation?.done;
  if (type === undefined) return [];
  return [last.detail === undefined ? { type, step: step.name } : { type, step: step.name, detail: last.detail }];
}
