// Store benchmark: the embedded store vs etcd, side by side in one run, on registry-shaped records.
//   node --import tsx bench/registry-store.ts [--keys 10000] [--watchers 100]
// Measures put throughput (sequential and 64 in flight), get latency p50/p99 over the loaded keys,
// and watch fan-out latency (put start → event at each of N watchers). etcd is a real /usr/bin/etcd
// on loopback with its default durability (fsync), as the embedded store fsyncs too. The last line
// is a one-line summary.
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EmbeddedStore, EtcdStore } from '../src/store/index.js';
import type { Store } from '../src/store/index.js';
import { etcdAvailable, startEtcd } from '../test/helpers/etcd.js';

interface Figures {
  readonly putSeqPerSec: number;
  readonly putConcPerSec: number;
  readonly getP50Ms: number;
  readonly getP99Ms: number;
  readonly listAllP50Ms: number;
  readonly fanoutP50Ms: number;
  readonly fanoutP99Ms: number;
}

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    watchers: { type: 'string', default: '100' },
    'seq-puts': { type: 'string', default: '2000' },
    'fanout-puts': { type: 'string', default: '200' },
  },
});
const KEYS = Number(args.keys);
const WATCHERS = Number(args.watchers);
const SEQ_PUTS = Number(args['seq-puts']);
const FANOUT_PUTS = Number(args['fanout-puts']);
const CONCURRENCY = 64;

/** About the size of a registered NSE as JSON (name, labels, url, expiry, path ids). */
function record(i: number): Uint8Array {
  const body = JSON.stringify({
    name: `nse-${i}`,
    networkServiceNames: ['web', 'db'],
    networkServiceLabels: { web: { labels: { app: 'web', zone: `z${i % 7}` } } },
    url: `tcp://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5001`,
    expirationTime: { seconds: 1_800_000_000 + i },
    pathIds: Array.from(
      { length: 4 },
      (_, k) => `00000000-0000-4000-8000-${String(i * 4 + k).padStart(12, '0')}`,
    ),
  });
  return new TextEncoder().encode(body);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function measure(name: string, store: Store): Promise<Figures> {
  // Sequential puts: one writer, each waits for its acknowledgement.
  let t0 = performance.now();
  for (let i = 0; i < SEQ_PUTS; i++) await store.put(`/bench/seq/${i}`, record(i));
  const putSeqPerSec = SEQ_PUTS / ((performance.now() - t0) / 1000);

  // 64 writers in flight: the registry under a burst of registrations.
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < KEYS) {
        const i = next++;
        await store.put(`/bench/nse/${i}`, record(i));
      }
    }),
  );
  const putConcPerSec = KEYS / ((performance.now() - t0) / 1000);

  // Gets of random loaded keys, one at a time (Find by name).
  const gets: number[] = [];
  for (let n = 0; n < Math.min(KEYS, 5000); n++) {
    const i = Math.floor(Math.random() * KEYS);
    const s = performance.now();
    const e = await store.get(`/bench/nse/${i}`);
    gets.push(performance.now() - s);
    if (!e) throw new Error(`${name}: /bench/nse/${i} missing`);
  }
  gets.sort((a, b) => a - b);

  // Listing every loaded key (a Find by template scans them all).
  const lists: number[] = [];
  for (let n = 0; n < 20; n++) {
    const s = performance.now();
    const l = await store.list('/bench/nse/');
    lists.push(performance.now() - s);
    if (l.entries.length !== KEYS) throw new Error(`${name}: list returned ${l.entries.length} of ${KEYS}`);
  }
  lists.sort((a, b) => a - b);

  // Fan-out: WATCHERS watches on one prefix; each put's start time → arrival at every watcher.
  const ac = new AbortController();
  // One signal ends all the benchmark's watchers; each watch listens on it.
  setMaxListeners(WATCHERS * 2, ac.signal);
  const started = new Map<string, number>();
  const lat: number[] = [];
  let received = 0;
  const expected = FANOUT_PUTS * WATCHERS;
  let allIn: () => void = () => undefined;
  const done = new Promise<void>((r) => (allIn = r));
  const watchers = Array.from({ length: WATCHERS }, async () => {
    try {
      for await (const e of store.watch('/bench/fan/', { signal: ac.signal })) {
        if (e.type !== 'put') continue;
        const s = started.get(e.entry.key);
        if (s !== undefined) lat.push(performance.now() - s);
        if (++received === expected) allIn();
      }
    } catch (err: unknown) {
      if (!ac.signal.aborted) throw err;
    }
  });
  // Let every watch stream establish before the first put (etcd creates them asynchronously).
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 0; i < FANOUT_PUTS; i++) {
    const key = `/bench/fan/${i}`;
    started.set(key, performance.now());
    await store.put(key, record(i));
  }
  const timeout = setTimeout(() => allIn(), 30_000);
  await done;
  clearTimeout(timeout);
  ac.abort();
  await Promise.allSettled(watchers);
  if (received < expected) console.log(`${name}: only ${received}/${expected} fan-out events in 30 s`);
  lat.sort((a, b) => a - b);

  return {
    putSeqPerSec,
    putConcPerSec,
    getP50Ms: percentile(gets, 50),
    getP99Ms: percentile(gets, 99),
    listAllP50Ms: percentile(lists, 50),
    fanoutP50Ms: percentile(lat, 50),
    fanoutP99Ms: percentile(lat, 99),
  };
}

function row(label: string, a: number, b: number | undefined, unit: string, higherIsBetter: boolean): string {
  const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
  const ratio =
    b === undefined
      ? ''
      : `${(a / b).toFixed(2)}x ${higherIsBetter ? '(>1 embedded faster)' : '(<1 embedded faster)'}`;
  return `${label.padEnd(26)} ${fmt(a).padStart(10)} ${b === undefined ? '-'.padStart(10) : fmt(b).padStart(10)}  ${unit.padEnd(6)} ${ratio}`;
}

async function main(): Promise<void> {
  console.log(
    `keys=${KEYS} watchers=${WATCHERS} seq-puts=${SEQ_PUTS} fanout-puts=${FANOUT_PUTS} concurrency=${CONCURRENCY}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'nsm-bench-embedded-'));
  let embedded: Figures;
  let rssMb: number;
  const emb = await EmbeddedStore.open({ dir });
  try {
    embedded = await measure('embedded', emb);
    rssMb = process.memoryUsage().rss / 1024 / 1024;
  } finally {
    await emb.close();
    rmSync(dir, { recursive: true, force: true });
  }

  let etcd: Figures | undefined;
  if (etcdAvailable()) {
    const proc = await startEtcd();
    try {
      const store = await EtcdStore.open({ url: proc.url, timeoutMs: 15_000 });
      try {
        etcd = await measure('etcd', store);
      } finally {
        await store.close();
      }
    } finally {
      await proc.stop();
    }
  } else {
    console.log('etcd: /usr/bin/etcd not installed, embedded only');
  }

  console.log(
    `${''.padEnd(26)} ${'embedded'.padStart(10)} ${'etcd'.padStart(10)}  unit   ratio embedded/etcd`,
  );
  console.log(row('put sequential', embedded.putSeqPerSec, etcd?.putSeqPerSec, '/s', true));
  console.log(row(`put ${CONCURRENCY} in flight`, embedded.putConcPerSec, etcd?.putConcPerSec, '/s', true));
  console.log(row('get p50', embedded.getP50Ms, etcd?.getP50Ms, 'ms', false));
  console.log(row('get p99', embedded.getP99Ms, etcd?.getP99Ms, 'ms', false));
  console.log(row(`list all ${KEYS} p50`, embedded.listAllP50Ms, etcd?.listAllP50Ms, 'ms', false));
  console.log(
    row(`fan-out p50 (${WATCHERS} watchers)`, embedded.fanoutP50Ms, etcd?.fanoutP50Ms, 'ms', false),
  );
  console.log(
    row(`fan-out p99 (${WATCHERS} watchers)`, embedded.fanoutP99Ms, etcd?.fanoutP99Ms, 'ms', false),
  );
  console.log(`process RSS after the embedded run (10k keys loaded): ${rssMb.toFixed(0)} MB`);
  const e = embedded;
  const f = (x: number | undefined, d = 0): string => (x === undefined ? 'n/a' : x.toFixed(d));
  console.log(
    `SUMMARY store: embedded put ${f(e.putSeqPerSec)}/s seq, ${f(e.putConcPerSec)}/s x${CONCURRENCY}, get p99 ${f(e.getP99Ms, 3)} ms, fan-out p99 ${f(e.fanoutP99Ms, 1)} ms | ` +
      `etcd put ${f(etcd?.putSeqPerSec)}/s seq, ${f(etcd?.putConcPerSec)}/s x${CONCURRENCY}, get p99 ${f(etcd?.getP99Ms, 3)} ms, fan-out p99 ${f(etcd?.fanoutP99Ms, 1)} ms`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
