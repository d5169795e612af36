#!/usr/bin/env node
// The GPU check for a host with NVIDIA GPUs (as root, after `npm run build`):
//   sudo node scripts/gpu-check.mjs
// 1. lists the GPUs through NVML and what holds them;
// 2. runs a container given one GPU (the nvidia engine: through the host's CDI spec for
//    nvidia.com/gpu when there is one, else by driver injection) and shows from inside that
//    it sees exactly that GPU (nvidia-smi -L) and can use it (a CUDA driver-API query —
//    cuInit, the device's name and memory, a context and a 1 MiB allocation — built with the
//    host's C compiler when there is one, else nvidia-smi queries);
// 3. with two or more GPUs, runs two containers given one GPU each and shows they got
//    different GPUs;
// and prints a one-line verdict. The base image has no C library, so the host's glibc files
// are bound read-only for nvidia-smi and the query program; the driver comes from the runtime.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container, ContainerConfig, Runtime } from '../dist/src/index.js';

const problems = [];
const notes = [];
const runtime = new Runtime({ engine: 'nvidia', logLevel: 'warn' });
const inv = await runtime.gpus();
console.log(`GPUs (${inv.source}${inv.driverVersion ? `, driver ${inv.driverVersion}` : ''}):`);
for (const d of inv.devices) {
  console.log(`  GPU ${d.index}: ${d.name ?? '?'} ${d.uuid ?? ''} /dev/nvidia${d.minor} memory ${d.memoryTotal ? (d.memoryTotal / 2 ** 30).toFixed(1) + ' GiB' : '?'} util ${d.gpuUtilization >= 0 ? `${d.gpuUtilization}%` : '?'} held by ${d.assignedTo?.join(', ') || '-'}`);
  for (const m of d.migInstances ?? []) console.log(`    MIG ${m.id}: ${m.profile ?? '?'} ${m.uuid ?? ''} memory ${m.memoryBytes ? (m.memoryBytes / 2 ** 30).toFixed(1) + ' GiB' : '?'} held by ${m.assignedTo?.join(', ') || '-'}`);
}
if (inv.nvmlError) console.log(`  NVML not used: ${inv.nvmlError}`);
if (inv.source !== 'nvml' || inv.devices.length === 0) {
  console.log(`gpu-check: FAIL (${inv.devices.length === 0 ? 'no GPU found' : 'NVML did not load'})`);
  await runtime.close({ stopSpawner: true });
  process.exit(1);
}
const topo = await runtime.topology();
console.log(`NUMA nodes: ${topo.nodes.map((n) => `${n.id} (CPUs ${n.cpus.length}, GPUs ${topo.gpus.filter((g) => g.numaNode === n.id).map((g) => g.index).join(',') || '-'})`).join('; ')}`);
if (!runtime.images.has('stratoswarm/base-agent:latest')) await runtime.images.buildBaseImage();

// The host's C library, for dynamically linked programs in the busybox image.
const LIBDIR = fs.existsSync('/lib/x86_64-linux-gnu') ? '/lib/x86_64-linux-gnu' : '/lib/aarch64-linux-gnu';
const glibc = ['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'libgcc_s.so.1']
  .map((f) => join(LIBDIR, f))
  .filter((f) => fs.existsSync(f))
  .map((f) => ({ source: fs.realpathSync(f), target: f, readOnly: true }));
const loader = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'].find((f) => fs.existsSync(f));
if (loader) glibc.push({ source: fs.realpathSync(loader), target: loader, readOnly: true });

// The CUDA query: the driver API through dlopen, so only libdl is needed to build it.
const work = fs.mkdtempSync(join(tmpdir(), 'gpu-check-'));
const QUERY = `#include <dlfcn.h>
#include <stdio.h>
typedef int (*f_i)(unsigned); typedef int (*f_pi)(int *); typedef int (*f_dev)(int *, int);
typedef int (*f_name)(char *, int, int); typedef int (*f_mem)(size_t *, int);
typedef int (*f_ctx)(void **, unsigned, int); typedef int (*f_alloc)(unsigned long long *, size_t);
typedef int (*f_free)(unsigned long long); typedef int (*f_dctx)(void *);
int main(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (!h) { printf("cuda: dlopen libcuda.so.1: %s\\n", dlerror()); return 1; }
  int n = 0, dev = 0, rc; char name[256] = {0}; size_t mem = 0; void *ctx = 0; unsigned long long p = 0;
  if ((rc = ((f_i)dlsym(h, "cuInit"))(0))) { printf("cuda: cuInit %d\\n", rc); return 1; }
  ((f_pi)dlsym(h, "cuDeviceGetCount"))(&n);
  ((f_dev)dlsym(h, "cuDeviceGet"))(&dev, 0);
  ((f_name)dlsym(h, "cuDeviceGetName"))(name, sizeof name, dev);
  ((f_mem)dlsym(h, "cuDeviceTotalMem_v2"))(&mem, dev);
  if ((rc = ((f_ctx)dlsym(h, "cuCtxCreate_v2"))(&ctx, 0, dev))) { printf("cuda: cuCtxCreate %d\\n", rc); return 1; }
  if ((rc = ((f_alloc)dlsym(h, "cuMemAlloc_v2"))(&p, 1 << 20))) { printf("cuda: cuMemAlloc %d\\n", rc); return 1; }
  ((f_free)dlsym(h, "cuMemFree_v2"))(p);
  ((f_dctx)dlsym(h, "cuCtxDestroy_v2"))(ctx);
  printf("cuda: devices=%d name=%s memory=%zu MiB alloc=ok\\n", n, name, mem >> 20);
  return 0;
}
`;
fs.writeFileSync(join(work, 'query.c'), QUERY);
const cc = spawnSync('cc', ['-O1', '-o', join(work, 'cuda-query'), join(work, 'query.c'), '-ldl'], { encoding: 'utf8' });
const haveQuery = cc.status === 0;
if (!haveQuery) notes.push(`no CUDA query program (${cc.error ? 'no C compiler' : cc.stderr.split('\n')[0]}): nvidia-smi queries instead`);

let n = 0;
async function runWithGpu(script) {
  const b = ContainerConfig.builder()
    .name(`gpu-check-${process.pid}-${++n}`)
    .image('stratoswarm/base-agent:latest')
    .gpuCount(1)
    .command(['/bin/sh', '-c', script]);
  for (const v of glibc) b.volume(v);
  if (haveQuery) b.volume({ source: work, target: '/opt/gpu-check', readOnly: true });
  const c = await Container.create(b.build(), { runtime });
  return c;
}

const inside = [
  'echo "visible=$NVIDIA_VISIBLE_DEVICES"',
  'ls /dev | grep "^nvidia[0-9]" | tr "\\n" " "; echo',
  'nvidia-smi -L',
  haveQuery ? '/opt/gpu-check/cuda-query' : 'nvidia-smi --query-gpu=index,uuid,name,memory.total,utilization.gpu --format=csv,noheader',
].join('; ');

const first = await runWithGpu(inside);
const held = (await runtime.gpus()).assignments.find((a) => a.containerId === first.id);
await first.start();
const exit = await first.wait();
const out = first.logs();
console.log(`\ncontainer given GPU ${held?.gpus.join(',')} (exit ${exit.exitCode}):\n${out.stdout}${out.stderr}`);
const expected = inv.devices.find((d) => d.index === held?.gpus[0]);
const listed = out.stdout.split('\n').filter((l) => /^GPU \d+:/.test(l));
if (exit.exitCode !== 0) problems.push(`the GPU container exited ${exit.exitCode}`);
if (listed.length !== 1) problems.push(`nvidia-smi -L inside listed ${listed.length} GPUs, not 1`);
else if (expected?.uuid && !listed[0].includes(expected.uuid)) problems.push(`nvidia-smi -L inside shows ${listed[0]}, not ${expected.uuid}`);
if (haveQuery && !/cuda: devices=1 .*alloc=ok/.test(out.stdout)) problems.push('the CUDA query did not see exactly one usable device');
await first.remove();

if (inv.devices.length >= 2) {
  const a = await runWithGpu('nvidia-smi --query-gpu=uuid --format=csv,noheader');
  const b = await runWithGpu('nvidia-smi --query-gpu=uuid --format=csv,noheader');
  const uuids = [];
  for (const c of [a, b]) {
    await c.start();
    await c.wait();
    uuids.push(c.logs().stdout.trim());
    await c.remove();
  }
  console.log(`two containers with one GPU each saw: ${uuids.join(' and ')}`);
  if (uuids[0] === uuids[1] || uuids.some((u) => !u)) problems.push(`the two containers did not get two different GPUs (${uuids.join(', ')})`);
} else notes.push('one GPU only: the two-container check needs two');

fs.rmSync(work, { recursive: true, force: true });
// The spawner exits once no container is left (others' containers keep it running).
await runtime.close({ stopSpawner: true });
console.log(`gpu-check: ${problems.length ? 'FAIL' : 'PASS'} (${inv.devices.length} GPU${inv.devices.length > 1 ? 's' : ''}, driver ${inv.driverVersion}${problems.length ? `; ${problems.join('; ')}` : ''}${notes.length ? `; ${notes.join('; ')}` : ''})`);
process.exit(problems.length ? 1 : 0);
