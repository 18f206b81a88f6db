// Child process of testbed-crash.test.ts: makes a test bed with a wireguard-go device in every host
// (detached, as the agent starts them), prints READY and waits to be killed with SIGKILL.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { UserspaceWireGuard, generatePrivateKey } from '../../src/host/wireguard/index.js';
import { testbedUp } from '../helpers/testbed.js';

const prefix = process.argv[2] ?? 'nsmcrash';
const runner = new ProcessRunner();
const bed = await testbedUp({ prefix, hosts: 2 });
const logDir = await mkdtemp(join(tmpdir(), 'nsm-crash-'));
for (const h of bed.hosts) {
  await new UserspaceWireGuard({ runner, netns: h.netns, logDir }).ensureDevice(h.wgDevice, {
    privateKey: generatePrivateKey(),
    listenPort: 51820,
  });
}
// Something else running inside a host namespace, as a benchmark's iperf3 server would be.
await runner.runChecked(['ip', 'netns', 'exec', bed.hosts[0]!.netns, 'true']);
process.stdout.write('READY\n');
setInterval(() => undefined, 60_000);
