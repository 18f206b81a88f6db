// Root integration: the kernel backend's `wg` commands (set with the key on stdin, set peers,
// show dump) against a real device. This machine has no kernel WireGuard, but `wg` drives
// wireguard-go through the same UAPI socket, so everything except `ip link add … type wireguard`
// runs for real here.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ProcessRunner } from '../../../src/host/command-runner.js';
import { Netns } from '../../../src/host/netns.js';
import { withKeyFile } from '../../../src/host/wireguard/key-file.js';
import {
  KernelWireGuard,
  UserspaceWireGuard,
  generatePrivateKey,
  publicKeyOf,
} from '../../../src/host/wireguard/index.js';

const ns = 'nsmwgt-h1';
const dev = 'nsmwgt-h1-wg';
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
let logDir = '';

test.before(async () => {
  if (!isRoot) return;
  logDir = await mkdtemp(join(tmpdir(), 'nsm-wgt-'));
  await new Netns(runner).delete(ns);
  await new Netns(runner).create(ns);
});

test.after.always(async () => {
  if (!isRoot) return;
  await new UserspaceWireGuard({ runner, netns: ns, logDir }).deleteDevice(dev);
  await new Netns(runner).delete(ns);
  await rm(logDir, { recursive: true, force: true });
});

serial('wg set (private key on stdin), peers and wg show dump on a live device', async (t) => {
  const userspace = new UserspaceWireGuard({ runner, netns: ns, logDir });
  const first = generatePrivateKey();
  await userspace.ensureDevice(dev, { privateKey: first, listenPort: 51820 });

  // What KernelWireGuard.ensureDevice runs after creating the link (its link check wants kind wireguard).
  const key = generatePrivateKey();
  await withKeyFile(key, (file) =>
    runner.runChecked(['wg', 'set', dev, 'listen-port', '51821', 'private-key', file], { netns: ns }),
  );

  const kernel = new KernelWireGuard({ runner, netns: ns });
  const [a, b, c] = [0, 1, 2].map(() => publicKeyOf(generatePrivateKey())) as [string, string, string];
  await kernel.configure(dev, {
    peers: [
      {
        publicKey: a,
        endpoint: '10.0.0.2:51820',
        allowedIps: ['10.1.0.0/24', '10.2.0.0/24'],
        persistentKeepalive: 25,
      },
      { publicKey: b, allowedIps: [] },
    ],
  });
  await kernel.configure(dev, {
    peers: [
      { publicKey: c, allowedIps: ['10.3.0.1/32'] },
      { publicKey: a, allowedIps: ['10.1.0.0/24'] },
    ],
    replacePeers: true,
  });

  const viaWg = await kernel.show(dev);
  t.is(viaWg?.publicKey, publicKeyOf(key));
  t.is(viaWg?.listenPort, 51821);
  const peers = [...(viaWg?.peers ?? [])].sort((x, y) => x.publicKey.localeCompare(y.publicKey));
  t.deepEqual(
    peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps, p.persistentKeepalive]),
    [
      // A peer declaration is whole: keepalive not given is off; an endpoint not given is kept.
      [a, '10.0.0.2:51820', ['10.1.0.0/24'], 0],
      [c, undefined, ['10.3.0.1/32'], 0],
    ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
  );
  // Both readers agree: wg's dump and our UAPI parser.
  const viaUapi = await userspace.show(dev);
  t.deepEqual(
    { ...viaUapi, peers: [...(viaUapi?.peers ?? [])].sort((x, y) => x.publicKey.localeCompare(y.publicKey)) },
    { ...viaWg, peers },
  );
  t.is(await kernel.show('nsmwgt-none'), undefined);
});
