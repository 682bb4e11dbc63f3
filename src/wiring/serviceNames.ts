import type { SagaStyle } from '../config.ts';

/**
 * The services' names, apart from their wiring: the gateway, the cluster and the command line
 * need the names only, and importing serviceWiring.ts for them would load every domain module
 * and the engine into processes that run none of them.
 */
export const SERVICES = ['orders', 'stock', 'payment', 'fulfillment', 'notification', 'tracker'] as const;
export type ServiceName = (typeof SERVICES)[number];

export function isServiceName(name: string): name is ServiceName {
  return (SERVICES as readonly string[]).includes(name);
}

/** The services a deployment of `style` runs: the saga tracker only observes choreographies. */
export function servicesOf(style: SagaStyle): readonly ServiceName[] {
  return style === 'choreography' ? SERVICES : SERVICES.filter((s) => s !== 'tracker');
}
