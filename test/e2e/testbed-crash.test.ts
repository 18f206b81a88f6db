// Crash cleanup: a child process builds a test bed with wireguard-go devices and is killed with
// SIGKILL; `scripts/testbed.ts down` must then remove everything it left (namespaces, the detached
// wireguard-go processes, their UAPI sockets), and a second `down` must be a no-op.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { hostSnapshot } from '../helpers/host-snapshot.js';
import { testbedDown } from '../helpers/testbed.js';

const prefix = 'nsmcrash';
const root = fileURLToPath(new URL('../../', import.meta.url));
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;

test.after.always(async () => {
  if (isRoot) await testbedDown(prefix);
});

function waitForReady(child: ChildProcess, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      reject(new Error(`child not READY within ${ms} ms: ${out}`));
    }, ms);
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before READY: ${out}`));
    });
  });
}

serial('down cleans up after the process that made the bed was killed with SIGKILL', async (t) => {
  const before = await hostSnapshot();
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/e2e/crash-child.ts', prefix], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await waitForReady(child, 30_000);
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }
  await new Promise((r) =>
    child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(undefined),
  );

  const left = await hostSnapshot(prefix);
  t.deepEqual(left.netns, [`${prefix}-br`, `${prefix}-h1`, `${prefix}-h2`]);
  t.deepEqual(left.wireguardGo, [`${prefix}-h1-wg`, `${prefix}-h2-wg`], 'wireguard-go outlives its parent');
  t.deepEqual(left.sockets, [`${prefix}-h1-wg.sock`, `${prefix}-h2-wg.sock`]);

  const down = await new ProcessRunner().run(
    [process.execPath, '--import', 'tsx', 'scripts/testbed.ts', 'down', '--prefix', prefix],
    { timeoutMs: 30_000 },
  );
  t.is(down.code, 0, down.stderr);
  // wireguard-go removes its own socket on SIGTERM; a SIGKILLed one leaves it for down to remove.
  t.regex(down.stdout, /removed 3 namespaces, stopped 2 processes, removed [02] sockets/);
  t.deepEqual(await hostSnapshot(prefix), { netns: [], wireguardGo: [], sockets: [], rootLinks: [] });
  t.deepEqual(await hostSnapshot(), before);

  const again = await testbedDown(prefix);
  t.deepEqual(again, { killedProcesses: [], removedSockets: [], removedNetns: [] });
});
