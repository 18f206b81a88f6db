// Child process of wireguard-survives.test.ts: builds a two-host test bed with a wireguard-go
// tunnel (private keys arrive on stdin as JSON, never in argv), prints READY, and waits to be
// killed with SIGKILL — standing in for an agent that dies while its tunnel carries traffic.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { Ip } from '../../src/host/ip/index.js';
import { UserspaceWireGuard, publicKeyOf } from '../../src/host/wireguard/index.js';
import { testbedUp } from '../helpers/testbed.js';

const prefix = process.argv[2] ?? 'nsmsurv';
const keys = JSON.parse(await text(process.stdin)) as string[];
const runner = new ProcessRunner();
const bed = await testbedUp({ prefix, hosts: 2 });
const logDir = await mkdtemp(join(tmpdir(), 'nsm-surv-'));
for (const h of bed.hosts) {
  const wg = new UserspaceWireGuard({ runner, netns: h.netns, logDir });
  await wg.ensureDevice(h.wgDevice, { privateKey: keys[h.index - 1]!, listenPort: 51820 });
  const other = bed.hosts.find((o) => o !== h)!;
  await wg.configure(h.wgDevice, {
    peers: [
      {
        publicKey: publicKeyOf(keys[other.index - 1]!),
        endpoint: `${other.underlayIp}:51820`,
        allowedIps: [`10.125.0.${other.index}/32`],
      },
    ],
  });
  await new Ip(runner, { netns: h.netns }).addAddress(h.wgDevice, `10.125.0.${h.index}/24`);
}
process.stdout.write('READY\n');
setInterval(() => undefined, 60_000);
