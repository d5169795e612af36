#!/usr/bin/env node
// The GPU check for a host with an NVIDIA GPU (run as root after `npm run build`): what
// NVML reports, and a container given one GPU that opens its device node while a second,
// unassigned GPU's node stays out of its /dev.
//   sudo node scripts/gpu-check.mjs
import { Container, ContainerConfig, Runtime } from '../dist/src/index.js';

const runtime = new Runtime({ logLevel: 'warn' });
const inv = await runtime.gpus();
console.log(`inventory (${inv.source}${inv.driverVersion ? `, driver ${inv.driverVersion}` : ''}):`);
for (const d of inv.devices) {
  console.log(`  GPU ${d.index}: ${d.name ?? '?'} ${d.uuid ?? ''} /dev/nvidia${d.minor} memory ${d.memoryTotal ? (d.memoryTotal / 2 ** 30).toFixed(1) + ' GiB' : '?'} util ${d.gpuUtilization ?? '?'}%`);
}
if (inv.nvmlError) console.log(`  NVML not used: ${inv.nvmlError}`);
if (inv.devices.length === 0) {
  console.log('no GPU on this host: nothing more to check');
  process.exit(0);
}
if (!runtime.images.has('stratoswarm/base-agent:latest')) await runtime.images.buildBaseImage();
const config = ContainerConfig.builder()
  .name(`gpu-check-${process.pid}`)
  .image('stratoswarm/base-agent:latest')
  .gpuDevices([0])
  .command(['/bin/sh', '-c', 'ls /dev | grep nvidia | tr "\\n" " "; echo; head -c 0 /dev/nvidia* >/dev/null 2>&1 && echo device-open-ok || echo device-open-failed'])
  .build();
const c = await Container.create(config, { runtime });
await c.start();
const exit = await c.wait();
console.log(`container with GPU 0: exit ${exit.exitCode}; output:\n${c.logs().stdout}${c.logs().stderr}`);
await c.remove();
await runtime.close();
