import { randomUUID } from 'node:crypto';
import { uuidV7 } from '../core/ids.ts';
import type { ApiCommand } from '../core/decider.ts';
import type { CommandOptions, Service } from '../ports/service.ts';
import { isProblemCode, Problem } from './problems.ts';

/** Runs an API command on a service and returns its value; a business failure becomes a Problem. */
export async function execute<C extends ApiCommand>(service: Service<C>, command: C, options: CommandOptions = {}): Promise<unknown> {
  const reply = await service.command(command, options);
  if (reply === undefined) throw new Error(`${service.name}: ${command.type} gave no reply`);
  if (reply.ok) return reply.value;
  throw new Problem(isProblemCode(reply.code) ? reply.code : 'internal', reply.detail);
}

/** A new entity's id (an order, item or user): a UUID whose first part is the time, so that new rows are written together. */
export const newId = (): string => uuidV7(Date.now(), randomUUID());
