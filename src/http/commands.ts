import { randomUUID } from 'node:crypto';
import type { ApiCommand } from '../core/decider.ts';
import type { Message } from '../core/message.ts';
import type { ServiceRuntime } from '../runtime/serviceRuntime.ts';
import { isProblemCode, Problem } from './problems.ts';
import type { Idempotency } from './validate.ts';

/** Runs an API command on a service and returns its value; a business failure becomes a Problem. */
export async function execute<M extends Message, C extends ApiCommand>(
  service: ServiceRuntime<M, C>,
  command: C,
  options: Readonly<{ correlationId?: string; idempotency?: Idempotency | undefined }> = {},
): Promise<unknown> {
  const reply = await service.command(command, options);
  if (reply === undefined) throw new Error(`${service.name}: ${command.type} gave no reply`);
  if (reply.ok) return reply.value;
  throw new Problem(isProblemCode(reply.code) ? reply.code : 'internal', reply.detail);
}

export const newId = (): string => randomUUID();
