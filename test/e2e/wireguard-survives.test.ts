// reliability.md §3.4 for the userspace backend: wireguard-go is started detached, so when the
// process that started it (the agent) is killed with SIGKILL, the tunnel keeps passing traffic
// (ping every 10 ms, no loss), and a new process adopts the running device through its UAPI socket
// instead of starting another wireguard-go.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import {
  UserspaceWireGuard,
  generatePrivateKey,
  listWireGuardGoProcesses,
  publicKeyOf,
} from '../../src/host/wireguard/index.js';
import { hostSnapshot } from '../helpers/host-snapshot.js';
import { testbedDown, testbedLayout } from '../helpers/testbed.js';

const prefix = 'nsmsurv';
const root = fileURLToPath(new URL('../../', import.meta.url));
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();

test.after.always(async () => {
  if (isRoot) await testbedDown(prefix);
});

serial('SIGKILL of the starter: no packet lost, and the next process adopts the device', async (t) => {
  const keys = [generatePrivateKey(), generatePrivateKey()];
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/tunnel-child.ts', prefix], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end(JSON.stringify(keys));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`child not READY in 30 s: ${out}`));
    }, 30_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before READY: ${out}`));
    });
  }).catch((e: unknown) => {
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    throw e;
  });
  const bed = testbedLayout({ prefix, hosts: 2 });
  const [h1, h2] = [bed.hosts[0]!, bed.hosts[1]!];
  const pidsBefore = (await listWireGuardGoProcesses()).filter((p) => p.device.startsWith(`${prefix}-`));
  t.is(pidsBefore.length, 2);

  // 200 pings 10 ms apart; the starter dies 0.5 s in.
  const ping = runner.run(['ping', '-i', '0.01', '-c', '200', '-W', '1', '10.125.0.2'], {
    netns: h1.netns,
    timeoutMs: 30_000,
  });
  await new Promise((r) => setTimeout(r, 500));
  process.kill(child.pid!, 'SIGKILL');
  const r = await ping;
  t.regex(r.stdout, /200 packets transmitted, 200 received, 0% packet loss/, r.stdout + r.stderr);
  t.log(r.stdout.trim().split('\n').at(-1) ?? '');

  // Adoption: same device, same process, peers intact.
  const wg = new UserspaceWireGuard({ runner, netns: h1.netns, logDir: '/tmp' });
  await wg.ensureDevice(h1.wgDevice, { privateKey: keys[0]!, listenPort: 51820 });
  const pidsAfter = (await listWireGuardGoProcesses()).filter((p) => p.device.startsWith(`${prefix}-`));
  t.deepEqual(pidsAfter.map((p) => p.pid).sort(), pidsBefore.map((p) => p.pid).sort());
  const state = await wg.show(h1.wgDevice);
  t.is(state?.peers[0]?.publicKey, publicKeyOf(keys[1]!));
  t.true((state?.peers[0]?.lastHandshakeMs ?? 0) > 0);
  t.is(h2.netns, `${prefix}-h2`);

  await testbedDown(prefix);
  t.deepEqual(await hostSnapshot(prefix), { netns: [], wireguardGo: [], sockets: [], rootLinks: [] });
});
