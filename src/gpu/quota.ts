/**
 * GPU quotas for shared GPUs through CUDA MPS: when an MPS control daemon runs (its pipe
 * directory holds a `control` pipe), a sharing container gets the pipe directory bound in and
 * the client limits MPS reads at a client's start — CUDA_MPS_ACTIVE_THREAD_PERCENTAGE (share
 * of the SMs) and CUDA_MPS_PINNED_DEVICE_MEM_LIMIT (device memory per GPU, "0=4096M,1=4096M",
 * indexed as the container sees its GPUs). Without a daemon a limit cannot be enforced, so
 * asking for one is an error, never a limit silently dropped.
 */
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';

export const DEFAULT_MPS_PIPE_DIR = '/tmp/nvidia-mps';

export interface GpuShare {
  computePercent?: number | undefined;
  memoryLimit?: number | undefined;
}

export interface MpsParts {
  env: string[];
  mounts: { source: string; target: string; readOnly: boolean }[];
}

/** The MPS environment and mounts for a sharing container with `gpuCount` GPUs. */
export function mpsParts(share: GpuShare, gpuCount: number, pipeDir: string, exists: (path: string) => boolean): MpsParts | undefined {
  const running = exists(join(pipeDir, 'control'));
  const limits = share.computePercent !== undefined || share.memoryLimit !== undefined;
  if (!running) {
    if (!limits) return undefined;
    const field = share.computePercent !== undefined ? 'gpuShare.computePercent' : 'gpuShare.memoryLimit';
    throw new RuntimeError(`${field}: GPU limits need an MPS control daemon (nvidia-cuda-mps-control -d); none runs (no ${join(pipeDir, 'control')})`, { code: 'EUNSUPPORTED', step: 'config', path: join(pipeDir, 'control') });
  }
  const env = [`CUDA_MPS_PIPE_DIRECTORY=${pipeDir}`];
  if (share.computePercent !== undefined) env.push(`CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=${share.computePercent}`);
  if (share.memoryLimit !== undefined) {
    const mib = Math.max(1, Math.floor(share.memoryLimit / 2 ** 20));
    env.push(`CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=${Array.from({ length: gpuCount }, (_, i) => `${i}=${mib}M`).join(',')}`);
  }
  return { env, mounts: [{ source: pipeDir, target: pipeDir, readOnly: false }] };
}
