/**
 * The image's configuration as a container's defaults, merged the way Docker merges them:
 * an `entrypoint` given replaces the image's Entrypoint and drops its Cmd; a `command` given
 * replaces Cmd; further `args` follow; the environment is the image's with the container's
 * variables set over it (by name); WorkingDir and User apply unless the container sets
 * them; labels are the image's with the container's over them.
 */
import type { OciImageConfig } from './media.js';

export interface ImageConfig {
  env: string[];
  cmd: string[];
  /** The image's Entrypoint; empty or absent when it has none. */
  entrypoint?: string[];
  workingDir: string;
  user: string;
  stopSignal?: string | undefined;
  labels?: Record<string, string>;
}

export function readImageConfig(c: OciImageConfig): ImageConfig {
  const cfg = c.config ?? {};
  return {
    env: [...(cfg.Env ?? [])],
    cmd: [...(cfg.Cmd ?? [])],
    entrypoint: [...(cfg.Entrypoint ?? [])],
    workingDir: cfg.WorkingDir || '/',
    user: cfg.User || '0',
    stopSignal: cfg.StopSignal || undefined,
    labels: { ...(cfg.Labels ?? {}) },
  };
}

/** The OCI config section for an ImageConfig (images committed from layers already here). */
export function writeImageConfig(c: ImageConfig): NonNullable<OciImageConfig['config']> {
  return {
    Env: c.env,
    Cmd: c.cmd,
    ...(c.entrypoint?.length ? { Entrypoint: c.entrypoint } : {}),
    WorkingDir: c.workingDir,
    User: c.user,
    ...(c.stopSignal ? { StopSignal: c.stopSignal } : {}),
    ...(c.labels && Object.keys(c.labels).length ? { Labels: c.labels } : {}),
  };
}

/** The container's argv: entrypoint, then command, then args. */
export function processArgv(image: ImageConfig, spec: { entrypoint?: string[] | undefined; command?: string[] | undefined; args: readonly string[] }): string[] {
  const entrypoint = spec.entrypoint ?? image.entrypoint ?? [];
  const cmd = spec.command ?? (spec.entrypoint !== undefined ? [] : image.cmd);
  return [...entrypoint, ...cmd, ...spec.args];
}

export function mergeLabels(image: ImageConfig, container: Readonly<Record<string, string>>): Record<string, string> {
  return { ...(image.labels ?? {}), ...container };
}
