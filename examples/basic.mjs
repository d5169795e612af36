// Basic container operations (the original description's first example), runnable as root
// after `npm run build`:  sudo node examples/basic.mjs
import { Container, ContainerConfig, Personality } from 'stratoswarm-runtime';

// Create container configuration
const config = ContainerConfig.builder()
  .name('agent-001')
  .image('stratoswarm/base-agent:latest')
  .personality(Personality.Explorer)
  .cpuLimit(2.0)
  .memoryLimit(4 * 1024 * 1024 * 1024) // 4 GiB
  .command(['/bin/sh', '-c', 'echo "hello from $(hostname)"; sleep 30'])
  .build();

// Create and start container
const container = await Container.create(config);
await container.start();

// Get container status
const status = await container.status();
console.log(`Container state: ${status.state}`);

// Run something inside it
const { stdout } = await container.exec(['uname', '-a']);
console.log(stdout.trim());

// Stop and remove
await container.stop({ timeoutMs: 1000 });
await container.remove();
console.log(`exit: ${JSON.stringify(await container.wait())}`);
