// Registry benchmark (issue B "Measure"): 10,000 NSEs over real gRPC + mTLS on loopback.
// Register throughput, Find-by-name p50/p99, watch fan-out latency to 100 watchers, server RSS.
// The registry runs in a child process so its RSS and CPU are its own. Last line: one summary.
//   node --import tsx bench/registry.ts [--store memory|embedded[:dir]|etcd://host:port] [--nses 10000]
//     [--watchers 100] [--concurrency 64] [--fanout-events 100]
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Metadata } from '@grpc/grpc-js';
import { NetworkServiceEndpointRegistryService } from '../src/api/index.js';
import { clientCredentials, dial, serverCredentials, startServer } from '../src/api/grpc/index.js';
import type { GrpcConnection } from '../src/api/grpc/index.js';
import { createTokenSigner, writeClientToken } from '../src/api/token/index.js';
import type { TokenSigner } from '../src/api/token/index.js';
import { systemClock } from '../src/host/index.js';
import { silentLogger } from '../src/log/index.js';
import { createRegistryServices } from '../src/registry/index.js';
import { EmbeddedStore, EtcdStore, MemoryStore } from '../src/store/index.js';
import type { Store } from '../src/store/index.js';
import { createTestCa, issueSvid } from '../test/helpers/pki.js';

const SERVER_ID = 'spiffe://bench.test/server';
const CLIENT_ID = 'spiffe://bench.test/agent/bench';

interface Pki {
  readonly bundlePem: string;
  readonly server: { certPem: string; keyPem: string };
  readonly client: { certPem: string; keyPem: string };
}

type ToChild = { type: 'start'; pki: Pki; store: string } | { type: 'rss' } | { type: 'stop' };
type ToParent =
  | { type: 'started'; port: number }
  | { type: 'rss'; rss: number; heapUsed: number; external: number; cpuMicros: number };

/** `memory`, `embedded:<dir>` (default: a temporary dir) or `etcd://host:port`. */
function storeArg(): string {
  const i = process.argv.indexOf('--store');
  return i >= 0 ? (process.argv[i + 1] ?? 'embedded') : 'embedded';
}

async function openStore(spec: string): Promise<{ store: Store; cleanup: () => void }> {
  if (spec === 'memory') return { store: new MemoryStore({ clock: systemClock }), cleanup: () => undefined };
  if (spec.startsWith('etcd://')) {
    return {
      store: await EtcdStore.open({ url: spec, clock: systemClock, namespace: `/bench-${Date.now()}/` }),
      cleanup: () => undefined,
    };
  }
  const given = spec.startsWith('embedded:') ? spec.slice('embedded:'.length) : '';
  const dir = given || mkdtempSync(join(tmpdir(), 'nsm-registry-bench-'));
  return {
    store: await EmbeddedStore.open({ dir, clock: systemClock }),
    cleanup: () => {
      if (!given) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function serve(): void {
  const send = (m: ToParent): void => void process.send?.(m);
  let stop: (() => Promise<void>) | undefined;
  process.on('message', (m: ToChild) => {
    void (async () => {
      if (m.type === 'start') {
        const { store, cleanup } = await openStore(m.store);
        const signer = createTokenSigner({
          spiffeId: SERVER_ID,
          certificatePem: m.pki.server.certPem,
          privateKeyPem: m.pki.server.keyPem,
          clock: systemClock,
        });
        const log = silentLogger();
        // 10 min: nothing expires while the benchmark runs.
        const registry = createRegistryServices({
          store,
          clock: systemClock,
          log,
          signer,
          defaultExpirationMs: 600_000,
        });
        const server = await startServer({
          listen: [
            {
              url: 'tcp://127.0.0.1:0',
              credentials: serverCredentials({
                bundlePem: m.pki.bundlePem,
                certChainPem: m.pki.server.certPem,
                keyPem: m.pki.server.keyPem,
                requireClientCert: true,
              }),
            },
          ],
          services: registry.services,
          log,
        });
        stop = async () => {
          await server.close({ graceMs: 100 });
          registry.close();
          await store.close();
          cleanup();
        };
        send({ type: 'started', port: server.port ?? 0 });
      } else if (m.type === 'rss') {
        global.gc?.();
        const mem = process.memoryUsage();
        const cpu = process.cpuUsage();
        send({
          type: 'rss',
          rss: mem.rss,
          heapUsed: mem.heapUsed,
          external: mem.external,
          cpuMicros: cpu.user + cpu.system,
        });
      } else {
        await stop?.();
        process.exit(0);
      }
    })();
  });
}

function request<T extends ToParent['type']>(
  child: ChildProcess,
  msg: ToChild,
  reply: T,
): Promise<Extract<ToParent, { type: T }>> {
  return new Promise((resolve) => {
    const on = (m: ToParent): void => {
      if (m.type !== reply) return;
      child.off('message', on);
      resolve(m as Extract<ToParent, { type: T }>);
    };
    child.on('message', on);
    child.send(msg);
  });
}

function metadata(signer: TokenSigner): Metadata {
  const md = new Metadata();
  writeClientToken(md, signer.mint({ spiffeId: SERVER_ID }));
  md.set('path', '{"Index":0,"PathSegments":null}');
  return md;
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const ms = (n: number): string => n.toFixed(2);

async function main(): Promise<void> {
  const nses = arg('nses', 10_000);
  const watchers = arg('watchers', 100);
  const concurrency = arg('concurrency', 64);
  const fanoutEvents = arg('fanout-events', 100);

  const ca = await createTestCa('bench.test');
  const serverSvid = await issueSvid(ca, SERVER_ID);
  const clientSvid = await issueSvid(ca, CLIENT_ID);
  const pki: Pki = {
    bundlePem: ca.certPem,
    server: { certPem: serverSvid.certPem, keyPem: serverSvid.keyPem },
    client: { certPem: clientSvid.certPem, keyPem: clientSvid.keyPem },
  };
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    execArgv: [
      '--import',
      'tsx',
      '--expose-gc',
      ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/regprof'] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const { port } = await request(child, { type: 'start', pki, store: storeArg() }, 'started');
  const baseline = await request(child, { type: 'rss' }, 'rss');

  const credentials = clientCredentials({
    bundlePem: pki.bundlePem,
    certChainPem: pki.client.certPem,
    keyPem: pki.client.keyPem,
    expectedServerId: SERVER_ID,
  });
  const conns: GrpcConnection[] = Array.from({ length: 4 }, () =>
    dial(`tcp://127.0.0.1:${port}`, { credentials, defaultTimeoutMs: 30_000 }),
  );
  const clients = conns.map((c) => c.client(NetworkServiceEndpointRegistryService));
  const client = clients[0]!;
  const signer = createTokenSigner({
    spiffeId: CLIENT_ID,
    certificatePem: pki.client.certPem,
    privateKeyPem: pki.client.keyPem,
    clock: systemClock,
  });
  const nse = (i: number, service = 'bench'): Parameters<typeof client.register>[0] => ({
    name: `nse-${i}`,
    networkServiceNames: [service],
    networkServiceLabels: { [service]: { labels: { host: `h-${i % 500}`, zone: `z-${i % 7}` } } },
    url: `tcp://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5001`,
  });
  // Warm up TLS and the code paths.
  await Promise.all(clients.map((c, i) => c.register(nse(1_000_000 + i), { metadata: metadata(signer) })));

  // 1. Register throughput.
  const beforeRegister = await request(child, { type: 'rss' }, 'rss');
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const c = clients[w % clients.length]!;
      for (let i = next++; i < nses; i = next++) await c.register(nse(i), { metadata: metadata(signer) });
    }),
  );
  const registerSeconds = (performance.now() - t0) / 1000;
  const registerRate = nses / registerSeconds;
  const afterRegister = await request(child, { type: 'rss' }, 'rss');
  // Server CPU per Register does not depend on what else runs on the machine; throughput does.
  const cpuPerRegisterUs = (afterRegister.cpuMicros - beforeRegister.cpuMicros) / nses;

  // 2. Find by name, one at a time.
  const findLat: number[] = [];
  const finds = Math.min(2_000, nses);
  for (let k = 0; k < finds; k++) {
    const name = `nse-${Math.floor(Math.random() * nses)}`;
    const s = performance.now();
    let n = 0;
    for await (const r of client.find({ networkServiceEndpoint: { name } }))
      if (r.networkServiceEndpoint) n++;
    findLat.push(performance.now() - s);
    if (n !== 1) throw new Error(`Find ${name} returned ${n} results`);
  }
  findLat.sort((a, b) => a - b);

  // 3. Watch fan-out: 100 watchers on one service, each registration timed to every watcher.
  const sentAt = new Map<string, number>();
  const fanLat: number[] = [];
  const aborts: AbortController[] = [];
  const watchDone = Array.from({ length: watchers }, (_, w) => {
    const ac = new AbortController();
    aborts.push(ac);
    const stream = clients[w % clients.length]!.find(
      { networkServiceEndpoint: { networkServiceNames: ['fanout'] }, watch: true },
      { signal: ac.signal },
    );
    return (async () => {
      try {
        for await (const r of stream) {
          const at = sentAt.get(r.networkServiceEndpoint?.name ?? '');
          if (at !== undefined) fanLat.push(performance.now() - at);
        }
      } catch {
        // cancelled at the end
      }
    })();
  });
  await new Promise((r) => setTimeout(r, 500)); // let every watch reach the server
  for (let e = 0; e < fanoutEvents; e++) {
    const i = nses + e;
    const name = `nse-${i}`;
    sentAt.set(name, performance.now());
    await client.register(nse(i, 'fanout'), { metadata: metadata(signer) });
    await new Promise((r) => setTimeout(r, 5));
  }
  const deadline = Date.now() + 10_000;
  while (fanLat.length < watchers * fanoutEvents && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  const delivered = fanLat.length;
  for (const ac of aborts) ac.abort();
  await Promise.all(watchDone);
  fanLat.sort((a, b) => a - b);
  const afterWatch = await request(child, { type: 'rss' }, 'rss');

  for (const c of conns) c.close();
  child.send({ type: 'stop' } satisfies ToChild);

  const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
  console.log(
    `registry bench: ${nses} NSEs, ${watchers} watchers x ${fanoutEvents} events, concurrency ${concurrency}, store ${storeArg()}, server in its own process`,
  );
  console.log(
    `register: ${registerRate.toFixed(0)}/s (${registerSeconds.toFixed(2)} s), server CPU ${cpuPerRegisterUs.toFixed(0)} us per Register (= ${(1e6 / cpuPerRegisterUs).toFixed(0)}/s per core)  target >= 2000/s`,
  );
  console.log(
    `load average while running: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${cpus().length} cores`,
  );
  console.log(
    `find-by-name: p50 ${ms(pct(findLat, 50))} ms  p99 ${ms(pct(findLat, 99))} ms over ${finds}  target p99 <= 5 ms`,
  );
  console.log(
    `watch fan-out: p50 ${ms(pct(fanLat, 50))} ms  p99 ${ms(pct(fanLat, 99))} ms, delivered ${delivered}/${watchers * fanoutEvents}  target p99 <= 100 ms`,
  );
  console.log(
    `server RSS: start ${mb(baseline.rss)} MB, after ${nses} NSEs ${mb(afterRegister.rss)} MB (JS heap ${mb(afterRegister.heapUsed)} MB, external ${mb(afterRegister.external)} MB), after watches ${mb(afterWatch.rss)} MB  target <= 150 MB`,
  );
  const ok =
    registerRate >= 2_000 &&
    pct(findLat, 99) <= 5 &&
    pct(fanLat, 99) <= 100 &&
    afterWatch.rss <= 150 * 1024 * 1024 &&
    delivered === watchers * fanoutEvents;
  console.log(
    `SUMMARY registry store=${storeArg().split(':')[0] ?? ''} nses=${nses} register=${registerRate.toFixed(0)}/s register_cpu=${cpuPerRegisterUs.toFixed(0)}us find_p50=${ms(pct(findLat, 50))}ms find_p99=${ms(pct(findLat, 99))}ms fanout_p50=${ms(pct(fanLat, 50))}ms fanout_p99=${ms(pct(fanLat, 99))}ms watchers=${watchers} rss=${mb(Math.max(afterRegister.rss, afterWatch.rss))}MB targets=${ok ? 'met' : 'MISSED'}`,
  );
}

if (process.argv.includes('--serve')) serve();
else
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
