/**
 * scripts/gpu-check.mjs, the check for a real GPU host, run here against stand-ins so its
 * own flow is known to work: the fake NVML (two GPUs), nodes made with mknod, and a CDI spec
 * that brings a stand-in nvidia-smi and libcuda (the CUDA query program is built and run).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IS_ROOT, SKIP_REASON } from '../helpers/runtime.js';
import { seedBaseImage } from '../helpers/shared-store.js';
import { skipBecause } from '../helpers/skip.js';

const REPO = join(__dirname, '../..');
const BUILT = fs.existsSync(join(REPO, 'dist/src/index.js')) && fs.existsSync(join(REPO, 'build/Release/stratoswarm_native.node'));
const HAVE_CC = spawnSync('sh', ['-c', 'command -v cc']).status === 0;
const SKIP = !IS_ROOT ? SKIP_REASON : !BUILT ? 'needs the build (npm run build: dist/ and the addon)' : !HAVE_CC ? 'needs a C compiler' : '';

const CUDA = `#include <string.h>
#include <stddef.h>
int cuInit(unsigned f) { (void)f; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *b, int n, int d) { (void)d; strncpy(b, "Fake H200", n); return 0; }
int cuDeviceTotalMem_v2(size_t *m, int d) { (void)d; *m = (size_t)141 << 30; return 0; }
int cuCtxCreate_v2(void **c, unsigned f, int d) { (void)f; (void)d; *c = (void *)1; return 0; }
int cuMemAlloc_v2(unsigned long long *p, size_t s) { (void)s; *p = 4096; return 0; }
int cuMemFree_v2(unsigned long long p) { (void)p; return 0; }
int cuCtxDestroy_v2(void *c) { (void)c; return 0; }
`;

let root: string | undefined;
let imageRoot: string | undefined;
const parent = `stratoswarm-gpucheck-${process.pid}`;
afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
  if (imageRoot) fs.rmSync(imageRoot, { recursive: true, force: true });
  for (const c of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
    try {
      fs.rmdirSync(join('/sys/fs/cgroup', c, parent));
    } catch {
      // not made in this hierarchy, or a v1 alias already removed
    }
  }
});

describe.skipIf(skipBecause(SKIP, 'gpu-check script test'))('scripts/gpu-check.mjs against stand-ins', () => {
  it('lists the GPUs, sees exactly one GPU inside, runs the CUDA query, gets two different GPUs, and says PASS', () => {
    root = fs.mkdtempSync(join(tmpdir(), 'ss-gpucheck-'));
    for (const d of ['dev', 'cdi', 'bin', 'state']) fs.mkdirSync(join(root, d));
    imageRoot = fs.mkdtempSync(join('/var/tmp', 'ss-img-'));
    seedBaseImage(imageRoot);
    const sh = (cmd: string) => expect(spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).status, cmd).toBe(0);
    sh(`cc -shared -fPIC -O1 -o ${root}/libnvidia-ml.so.1 ${join(__dirname, '../fixtures/fake-nvml.c')}`);
    fs.writeFileSync(join(root, 'cuda.c'), CUDA);
    sh(`cc -shared -fPIC -o ${root}/libcuda.so.1 ${root}/cuda.c`);
    sh(`cd ${root}/dev && mknod nvidia4 c 195 4 && mknod nvidia5 c 195 5 && mknod nvidiactl c 195 255 && chmod 666 *`);
    fs.writeFileSync(join(root, 'bin/nvidia-smi'), '#!/bin/sh\nif [ "$1" = -L ]; then for d in /dev/nvidia[0-9]*; do echo "GPU 0: Fake H200 (UUID: $NVIDIA_VISIBLE_DEVICES)"; done; else echo "$NVIDIA_VISIBLE_DEVICES"; fi\n', { mode: 0o755 });
    const gpu = (i: number, minor: number) => ({ name: String(i), containerEdits: { env: [`NVIDIA_VISIBLE_DEVICES=GPU-fake-${i}`], deviceNodes: [{ path: `/dev/nvidia${i}`, hostPath: `${root}/dev/nvidia${minor}` }] } });
    const spec = {
      cdiVersion: '0.5.0',
      kind: 'nvidia.com/gpu',
      devices: [gpu(0, 4), gpu(1, 5)],
      containerEdits: {
        env: ['LD_LIBRARY_PATH=/usr/local/nvidia/lib64'],
        deviceNodes: [{ path: '/dev/nvidiactl', hostPath: `${root}/dev/nvidiactl` }],
        mounts: [
          { hostPath: `${root}/bin/nvidia-smi`, containerPath: '/usr/bin/nvidia-smi', options: ['ro', 'bind'] },
          { hostPath: `${root}/libcuda.so.1`, containerPath: '/usr/local/nvidia/lib64/libcuda.so.1', options: ['ro', 'bind'] },
        ],
      },
    };
    fs.writeFileSync(join(root, 'cdi/nvidia.json'), JSON.stringify(spec));
    const r = spawnSync(process.execPath, [join(REPO, 'scripts/gpu-check.mjs')], {
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        STRATOSWARM_NVML_LIBRARY: join(root, 'libnvidia-ml.so.1'),
        STRATOSWARM_CDI_SPEC_DIRS: join(root, 'cdi'),
        STRATOSWARM_STATE_ROOT: join(root, 'state'),
        STRATOSWARM_IMAGE_ROOT: imageRoot,
        STRATOSWARM_CGROUP_PARENT: parent,
      },
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('GPU 1: Fake H200 GPU-fake-1 /dev/nvidia5');
    expect(r.stdout).toMatch(/cuda: devices=1 name=Fake H200 memory=144384 MiB alloc=ok/);
    expect(r.stdout).toMatch(/two containers with one GPU each saw: GPU-fake-[01] and GPU-fake-[01]/);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('gpu-check: PASS (2 GPUs, driver 999.99.fake)');
  }, 150_000);
});
