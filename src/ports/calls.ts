import type { Envelope } from '../core/message.ts';

/** Runs commands on the participant that owns them and gives back, per command, the messages it answered. */
export type Call = (participant: string, commands: readonly Envelope[]) => Promise<readonly (readonly Envelope[])[]>;

/**
 * The synchronous style over HTTP, as both ends agree on it: the path, under a participant's
 * prefix, where its saga steps are called, and the header that carries the deployment's
 * internal token.
 */
export const SAGA_CALL_PATH = '/_saga';
export const TOKEN_HEADER = 'x-orderly-token';
