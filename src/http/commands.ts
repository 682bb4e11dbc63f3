import { randomUUID } from 'node:crypto';
import type { Envelope } from '../core/message.ts';
import type { ServiceRuntime } from '../runtime/service.ts';
import { isProblemCode, Problem } from './problems.ts';
import type { Idempotency } from './validate.ts';

/** Runs an API command on a service and returns its value; a business failure becomes a Problem. */
export async function execute(
  service: ServiceRuntime,
  command: Readonly<{ type: string }>,
  options: Readonly<{ correlationId?: string; idempotency?: Idempotency | undefined }> = {},
): Promise<unknown> {
  const message: Envelope = {
    id: `cmd:${randomUUID()}`,
    type: command.type,
    sagaId: '',
    step: '',
    correlationId: options.correlationId ?? '',
    causationId: '',
    at: Date.now(),
    payload: command,
  };
  const reply = await service.command(message, options.idempotency);
  if (reply === undefined) throw new Error(`${service.name}: ${command.type} gave no reply`);
  if (reply.ok) return reply.value;
  throw new Problem(isProblemCode(reply.code) ? reply.code : 'internal', reply.detail);
}

export const newId = (): string => randomUUID();
