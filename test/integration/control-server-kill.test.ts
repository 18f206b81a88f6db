// Issue 3 acceptance: kill -9 of the control server in the middle of registrations, then a restart on
// the same data dir, loses no acknowledged registration. The binary runs `server run` with the
// embedded store on loopback; the test registers NSEs 16 at a time with a server-issued tool SVID,
// SIGKILLs the server at a random moment after a few hundred acknowledgements, restarts it on the
// same data dir and port, and checks that Find (watch=false) returns every NSE whose Register had
// resolved, and that a new Register works. Three rounds on one data dir. The server process is
// killed by its pid on every exit path.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initControlServer } from '../../src/daemon/control-server.js';
import { systemClock } from '../../src/host/index.js';
import { loadCa } from '../../src/identity/index.js';
import { binaryTest, builtBinary } from '../helpers/binary.js';
import { freePort, waitForOutput } from '../helpers/child-process.js';
import { RegistryClient, TD, all, toolIdentity } from './registry/fixtures.js';

const ROUNDS = 3;
const CONCURRENCY = 16;
const SERVICE = 'kill-net';

function exited(child: ChildProcess, ms: number): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve(child.signalCode ?? child.exitCode);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server pid ${child.pid} still running after ${ms} ms`)),
      ms,
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? code);
    });
  });
}

binaryTest(
  'control server: kill -9 mid-registration, restart, every acknowledged NSE is there',
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'nsm-agent-cs-kill-'));
    t.teardown(() => rm(dataDir, { recursive: true, force: true }));
    await initControlServer({ trustDomain: TD, dataDir });
    const { svid, bundle } = await toolIdentity((await loadCa(dataDir)).ca, dataDir, 'kill-test');

    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const children: ChildProcess[] = [];
    t.teardown(() => {
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null && c.pid !== undefined)
          process.kill(c.pid, 'SIGKILL');
      }
    });
    const startServer = async (): Promise<ChildProcess> => {
      const child = spawn(
        builtBinary,
        ['server', 'run', '--data-dir', dataDir, '--listen', url, '--public-url', url, '--store', 'embedded'],
        { cwd: dataDir, env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      children.push(child);
      await waitForOutput(child, 'control server listening', 20_000);
      return child;
    };

    let server = await startServer();
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh connection per server process: no reconnect backoff from the previous one.
      const client = new RegistryClient(t, url, svid, bundle, systemClock);
      const acked: string[] = [];
      const killAfter = 200 + Math.floor(Math.random() * 200);
      let next = 0;
      let killed = false;
      const pid = server.pid!;
      const killOnce = (): void => {
        if (killed) return;
        killed = true;
        process.kill(pid, 'SIGKILL');
      };
      // Workers keep 16 calls in flight until their calls fail, so the kill lands mid-registration;
      // an ack that arrives after kill() was sent is still an ack, and is checked like the others.
      const worker = async (): Promise<void> => {
        while (next < 100_000) {
          const name = `r${round}-nse-${next++}`;
          try {
            await client.registerNse({ name, networkServiceNames: [SERVICE], url: 'tcp://10.0.0.1:5001' });
          } catch {
            return; // the server is gone: calls in flight at the kill, and after it, fail
          }
          acked.push(name);
          if (acked.length >= killAfter) killOnce();
        }
      };
      const workers = Array.from({ length: CONCURRENCY }, () => worker());
      t.is(await exited(server, 30_000), 'SIGKILL', `round ${round}: the server died of SIGKILL`);
      await Promise.all(workers);
      t.true(acked.length >= killAfter, `round ${round}: ${acked.length} acks before the kill`);
      const sent = next;

      server = await startServer();
      const after = new RegistryClient(t, url, svid, bundle, systemClock);
      const found = await all(
        after.nse.find({ networkServiceEndpoint: { networkServiceNames: [SERVICE] }, watch: false }),
      );
      const names = new Set(found.map((r) => r.networkServiceEndpoint?.name));
      const missing = acked.filter((n) => !names.has(n));
      t.deepEqual(
        missing,
        [],
        `round ${round}: acknowledged NSEs lost (${acked.length} acked, ${sent} sent)`,
      );
      t.log(`round ${round}: ${acked.length} acked of ${sent} sent, ${names.size} found after restart`);

      const fresh = `r${round}-after-restart`;
      const { response } = await after.registerNse({
        name: fresh,
        networkServiceNames: [SERVICE],
        url: 'tcp://10.0.0.2:5001',
      });
      t.is(response.name, fresh);
      const one = await all(after.nse.find({ networkServiceEndpoint: { name: fresh }, watch: false }));
      t.is(one.length, 1);
    }
  },
);
