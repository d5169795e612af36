/** What the container modules share of one container: its runtime's parts, record and config. */
import type { Logger } from '../logger.js';
import type { RuntimeParts } from '../parts.js';
import type { ContainerRecord } from '../state.js';
import type { ContainerConfig, ResourceSpec } from './config.js';

export interface ContainerContext {
  readonly parts: RuntimeParts;
  readonly rec: ContainerRecord;
  readonly config: ContainerConfig;
  readonly log: Logger;
}

/** The resource settings in force: the configuration's, as update() changed them. */
export function resourcesOf(ctx: Pick<ContainerContext, 'rec' | 'config'>): ResourceSpec {
  return { ...((ctx.rec.resources ?? ctx.config.spec.resources) as ResourceSpec) };
}

/** The states in which a container has a live init and cgroups. */
export function isLive(state: string): boolean {
  return state === 'created' || state === 'running' || state === 'paused';
}
