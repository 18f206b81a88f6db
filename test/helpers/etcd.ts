// A real etcd for tests: /usr/bin/etcd (Debian's etcd-server) on 127.0.0.1 with free ports and a
// temporary data directory. start() waits (bounded) until it answers; stop() ends it by pid and
// removes the directory. Tests register stop() in test.after.always so it runs on failure too.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/store/index.js';

/** The etcd binary: $NSM_TEST_ETCD, else Debian's etcd-server path. */
export function etcdBin(): string {
  return process.env['NSM_TEST_ETCD'] ?? '/usr/bin/etcd';
}

export interface EtcdProcess {
  /** `etcd://127.0.0.1:PORT` for EtcdStore. */
  readonly url: string;
  readonly clientPort: number;
  readonly pid: number;
  /** Output so far, for failure messages. */
  output(): string;
  /** SIGKILLs etcd without cleanup (the data directory stays) — for "etcd went away" tests. */
  kill(): Promise<void>;
  /** Kills etcd if it runs and starts it again on the same ports and data directory. */
  restart(): Promise<void>;
  /** Stops etcd (SIGTERM, then SIGKILL after 5 s) and removes its data directory. Idempotent. */
  stop(): Promise<void>;
}

export function etcdAvailable(): boolean {
  return existsSync(etcdBin());
}

/** A port nobody listens on right now (the kernel picks it). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startEtcd(options: { readonly readyTimeoutMs?: number } = {}): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const url = `etcd://127.0.0.1:${clientPort}`;
  const bin = etcdBin();
  const args = [
    '--name',
    'test',
    '--data-dir',
    join(dir, 'data'),
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `test=${peer}`,
    '--initial-cluster-state',
    'new',
    '--log-level',
    'warn',
  ];
  let output = '';
  let child: ChildProcess | undefined;
  let stopped = false;

  const running = (c: ChildProcess | undefined): c is ChildProcess =>
    c !== undefined && c.exitCode === null && c.signalCode === null;

  const kill = async (): Promise<void> => {
    const c = child;
    if (running(c) && c.pid !== undefined) {
      process.kill(c.pid, 'SIGKILL');
      await exited(c);
    }
  };

  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      const c = child;
      if (running(c) && c.pid !== undefined) {
        const pid = c.pid;
        process.kill(pid, 'SIGTERM');
        const t = setTimeout(() => {
          if (running(c)) process.kill(pid, 'SIGKILL');
        }, 5_000);
        await exited(c);
        clearTimeout(t);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  /** Spawns etcd on the fixed ports and data directory, and waits (bounded) until it answers. */
  const launch = async (): Promise<void> => {
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-20_000);
    };
    c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    if (c.pid === undefined) throw new Error(`could not start ${bin}`);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
    for (;;) {
      if (c.exitCode !== null) throw new Error(`etcd exited with ${c.exitCode}:\n${output}`);
      try {
        const probe = await EtcdStore.open({ url, connectTimeoutMs: 1_000, timeoutMs: 1_000 });
        await probe.close();
        return;
      } catch (e: unknown) {
        if (Date.now() > deadline) {
          throw new Error(`etcd did not answer on ${url} in time: ${String(e)}\n${output}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  try {
    await launch();
  } catch (e: unknown) {
    await stop();
    throw e;
  }
  return {
    url,
    clientPort,
    get pid() {
      return child?.pid ?? 0;
    },
    output: () => output,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop,
  };
}
