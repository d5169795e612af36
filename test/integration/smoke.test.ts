import { describe, it, expect } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { testRuntime } from '../helpers/runtime.js';

describe('smoke', () => {
  it('runs', async () => {
    const t = testRuntime();
    try {
      const cfg = ContainerConfig.builder().name('t1').image('stratoswarm/base-agent:latest').command(['/bin/sh', '-c', 'echo pid=$$ host=$(hostname); ls /; grep Cap /proc/self/status; ifconfig -a; id; exit 7']).build();
      const c = await Container.create(cfg, { runtime: t.runtime });
      console.log('created', c.id, c.state, c.pid);
      await c.start();
      const st = await c.wait();
      console.log('exit', st, c.logs());
      await c.remove();
    } finally {
      await t.cleanup();
    }
  });
});
