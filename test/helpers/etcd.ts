// A real etcd for tests: /usr/bin/etcd (Debian's etcd-server) on 127.0.0.1 with free ports and a
// temporary data directory. start() waits (bounded) until it answers; stop() ends it by pid and
// removes the directory. Tests register stop() in test.after.always so it runs on failure too.
// With `tls`, etcd serves https client URLs with a certificate from a CA made for the test (and
// by default requires client certificates); startEtcdCluster starts several members as one cluster.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/store/index.js';
import type { EtcdStoreOptions } from '../../src/store/index.js';
import { createEtcdCa, writeCaFile, writeTlsCert } from './etcd-pki.js';
import type { TestCa } from './etcd-pki.js';

/** The etcd binary: $NSM_TEST_ETCD, else Debian's etcd-server path. */
export function etcdBin(): string {
  return process.env['NSM_TEST_ETCD'] ?? '/usr/bin/etcd';
}

/** The TLS files for `EtcdStoreOptions.tls` (what `--store-ca/--store-cert/--store-key` name). */
export type StoreTlsFiles = NonNullable<EtcdStoreOptions['tls']>;

export interface EtcdTlsOptions {
  /** etcd --client-cert-auth: refuse clients without a certificate from the CA (default true). */
  readonly clientCertAuth?: boolean;
  /** SANs of etcd's server certificate (default DNS localhost and IP 127.0.0.1). */
  readonly serverDns?: readonly string[];
  readonly serverIps?: readonly string[];
}

export interface EtcdTls {
  readonly ca: TestCa;
  /** Directory of the files below; removed by stop(). */
  readonly dir: string;
  readonly caFile: string;
  /** A client certificate (clientAuth) and key from the CA, accepted by etcd. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** caFile + the client pair, ready for `EtcdStore.open({ url, tls })`. */
  readonly storeTls: StoreTlsFiles;
}

export interface EtcdStartOptions {
  readonly readyTimeoutMs?: number;
  /** Serve TLS on the client port (`url` is then etcds://); true means the defaults. */
  readonly tls?: boolean | EtcdTlsOptions;
}

export interface EtcdProcess {
  /** `etcd://127.0.0.1:PORT` (or `etcds://…` with TLS) for EtcdStore. */
  readonly url: string;
  /** Set when etcd serves TLS. */
  readonly tls?: EtcdTls;
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
export async function freePort(): Promise<number> {
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

/** Creates a CA and a client certificate from it under `dir` (etcd's server certificate: tlsFor). */
export async function createEtcdTls(dir: string): Promise<EtcdTls> {
  mkdirSync(dir, { recursive: true });
  const ca = await createEtcdCa();
  const caFile = writeCaFile(ca, dir);
  const client = await writeTlsCert(ca, dir, 'client', { usages: ['client'] });
  return {
    ca,
    dir,
    caFile,
    clientCertFile: client.certFile,
    clientKeyFile: client.keyFile,
    storeTls: { caFile, certFile: client.certFile, keyFile: client.keyFile },
  };
}

interface MemberConfig {
  readonly name: string;
  readonly dir: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** `name=http://127.0.0.1:peer,…` for every member. */
  readonly initialCluster: string;
  readonly tls:
    | {
        readonly files: EtcdTls;
        readonly server: { certFile: string; keyFile: string };
        readonly serverIps: readonly string[];
        readonly clientCertAuth: boolean;
      }
    | undefined;
  readonly readyTimeoutMs: number;
  /** Removed by stop() (TLS files of a single etcd). */
  readonly ownedDirs: readonly string[];
}

export async function startEtcd(options: EtcdStartOptions = {}): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-etcd-'));
  try {
    const tls = options.tls
      ? await tlsFor(join(dir, 'tls'), options.tls === true ? {} : options.tls)
      : undefined;
    const clientPort = await freePort();
    const peerPort = await freePort();
    const member = memberProcess({
      name: 'test',
      dir,
      clientPort,
      peerPort,
      initialCluster: `test=http://127.0.0.1:${peerPort}`,
      tls,
      readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
      ownedDirs: [dir],
    });
    await member.start();
    return member.handle;
  } catch (e: unknown) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export interface EtcdCluster {
  /** Every member's client address in one URL: `etcd[s]://127.0.0.1:P1,127.0.0.1:P2,…`. */
  readonly url: string;
  readonly members: readonly EtcdProcess[];
  readonly tls?: EtcdTls;
  /** Stops every member and removes all directories. Idempotent. */
  stop(): Promise<void>;
}

/** `size` etcd members forming one cluster on loopback (peers plaintext; clients TLS if asked). */
export async function startEtcdCluster(
  options: EtcdStartOptions & { readonly size: number },
): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-etcd-cluster-'));
  const members: ReturnType<typeof memberProcess>[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.handle.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const tls = options.tls
      ? await tlsFor(join(dir, 'tls'), options.tls === true ? {} : options.tls)
      : undefined;
    const ports: { client: number; peer: number }[] = [];
    for (let i = 0; i < options.size; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
    for (const [i, p] of ports.entries()) {
      members.push(
        memberProcess({
          name: `m${i}`,
          dir: join(dir, `m${i}`),
          clientPort: p.client,
          peerPort: p.peer,
          initialCluster,
          tls,
          readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
          ownedDirs: [join(dir, `m${i}`)],
        }),
      );
    }
    // All at once: a member cannot answer until a quorum of them runs.
    await Promise.all(members.map((m) => m.start()));
    const scheme = tls ? 'etcds' : 'etcd';
    return {
      url: `${scheme}://${ports.map((p) => `127.0.0.1:${p.client}`).join(',')}`,
      members: members.map((m) => m.handle),
      ...(tls ? { tls: tls.files } : {}),
      stop,
    };
  } catch (e: unknown) {
    await stop();
    throw e;
  }
}

async function tlsFor(dir: string, o: EtcdTlsOptions): Promise<MemberConfig['tls']> {
  const files = await createEtcdTls(dir);
  const serverIps = o.serverIps ?? ['127.0.0.1'];
  const server = await writeTlsCert(files.ca, dir, 'server', {
    dns: o.serverDns ?? ['localhost'],
    ips: serverIps,
  });
  return { files, server, serverIps, clientCertAuth: o.clientCertAuth ?? true };
}

function memberProcess(cfg: MemberConfig): { start: () => Promise<void>; handle: EtcdProcess } {
  const scheme = cfg.tls ? 'https' : 'http';
  const client = `${scheme}://127.0.0.1:${cfg.clientPort}`;
  const peer = `http://127.0.0.1:${cfg.peerPort}`;
  const url = `${cfg.tls ? 'etcds' : 'etcd'}://127.0.0.1:${cfg.clientPort}`;
  const bin = etcdBin();
  const args = [
    '--name',
    cfg.name,
    '--data-dir',
    join(cfg.dir, 'data'),
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    cfg.initialCluster,
    '--initial-cluster-state',
    'new',
    '--log-level',
    'warn',
    ...(cfg.tls
      ? [
          '--cert-file',
          cfg.tls.server.certFile,
          '--key-file',
          cfg.tls.server.keyFile,
          '--trusted-ca-file',
          cfg.tls.files.caFile,
          ...(cfg.tls.clientCertAuth ? ['--client-cert-auth'] : []),
        ]
      : []),
  ];
  // Probe by a name the server certificate carries (a test may leave 127.0.0.1 out on purpose).
  const probeUrl =
    cfg.tls && !cfg.tls.serverIps.includes('127.0.0.1') ? url.replace('127.0.0.1', 'localhost') : url;
  const probeTls = cfg.tls
    ? cfg.tls.clientCertAuth
      ? cfg.tls.files.storeTls
      : { caFile: cfg.tls.files.caFile }
    : undefined;
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
    for (const d of cfg.ownedDirs) rmSync(d, { recursive: true, force: true });
  };

  const spawnIt = (): ChildProcess => {
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-20_000);
    };
    c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    if (c.pid === undefined) throw new Error(`could not start ${bin}`);
    return c;
  };

  /** Waits (bounded) until this member answers a read. */
  const ready = async (c: ChildProcess): Promise<void> => {
    const deadline = Date.now() + cfg.readyTimeoutMs;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`etcd ${cfg.name} exited with ${c.exitCode}:\n${output}`);
      try {
        const probe = await EtcdStore.open({
          url: probeUrl,
          connectTimeoutMs: 1_000,
          timeoutMs: 1_000,
          ...(probeTls ? { tls: probeTls } : {}),
        });
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

  const launch = async (): Promise<void> => {
    await ready(spawnIt());
  };

  const start = async (): Promise<void> => {
    mkdirSync(cfg.dir, { recursive: true });
    try {
      await launch();
    } catch (e: unknown) {
      await stop();
      throw e;
    }
  };

  const handle: EtcdProcess = {
    url,
    ...(cfg.tls ? { tls: cfg.tls.files } : {}),
    clientPort: cfg.clientPort,
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
  return { start, handle };
}
