// The registry server side of bench/registry.ts: runs in a child process (forked, IPC channel) so
// its RSS and CPU are its own. Kept apart from the parent's code so that esbuild can bundle just
// this (and the src/ code it uses) for an RSS that reflects the shipped code, not tsx.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { serverCredentials, startServer } from '../../src/api/grpc/index.js';
import { createTokenSigner } from '../../src/api/token/index.js';
import { systemClock } from '../../src/host/index.js';
import { silentLogger } from '../../src/log/index.js';
import { createRegistryServices } from '../../src/registry/index.js';
import { EmbeddedStore, EtcdStore, MemoryStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/index.js';

export const SERVER_ID = 'spiffe://bench.test/server';

export interface Pki {
  readonly bundlePem: string;
  readonly server: { certPem: string; keyPem: string };
  readonly client: { certPem: string; keyPem: string };
}

export type ToChild =
  | { type: 'start'; pki: Pki; store: string }
  | { type: 'rss' }
  | { type: 'heap-snapshot'; dir: string }
  | { type: 'stop' };
export type ToParent =
  | { type: 'started'; port: number; node: string }
  | { type: 'heap-snapshot'; file: string }
  | {
      type: 'rss';
      rss: number;
      heapUsed: number;
      /** V8 heap committed (all spaces), used or not. */
      heapTotal: number;
      /** Committed size of the young generation (V8 `new_space`). */
      newSpace: number;
      external: number;
      arrayBuffers: number;
      cpuMicros: number;
      /** Resident bytes by kind of mapping (/proc/self/smaps). */
      mappings: Record<string, number>;
    };

/**
 * Where the resident memory lies: the node executable's pages, other files, the brk heap (glibc's
 * main malloc arena) and anonymous mappings (V8's heap pages, other malloc arenas, thread stacks).
 */
function residentByMapping(): Record<string, number> {
  const out: Record<string, number> = {};
  let kind = 'anonymous';
  let text: string;
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return out;
  }
  // BENCH_SMAPS=FILE: keep the raw smaps of the last measurement, to look at mapping by mapping.
  const keep = process.env['BENCH_SMAPS'];
  if (keep) writeFileSync(keep, text);
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1] ?? '';
      kind =
        path === ''
          ? 'anonymous'
          : path === process.execPath
            ? 'node executable'
            : path.startsWith('[')
              ? path
              : 'other files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] = (out[kind] ?? 0) + Number(rss[1]) * 1024;
  }
  return out;
}

/** `memory`, `embedded[:dir]` (default: a temporary dir) or `etcd://host:port`. */
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

/** Answers the parent's messages: start a registry on a store, report memory/CPU, stop. */
export function serve(): void {
  const send = (m: ToParent): void => void process.send?.(m);
  let stop: (() => Promise<void>) | undefined;
  // The parent went away (killed, crashed): do not linger.
  process.on('disconnect', () => process.exit(0));
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
        send({ type: 'started', port: server.port ?? 0, node: process.version });
      } else if (m.type === 'rss') {
        global.gc?.();
        const mem = process.memoryUsage();
        const cpu = process.cpuUsage();
        const newSpace = getHeapSpaceStatistics().find((h) => h.space_name === 'new_space');
        send({
          type: 'rss',
          rss: mem.rss,
          heapUsed: mem.heapUsed,
          heapTotal: mem.heapTotal,
          newSpace: newSpace?.space_size ?? 0,
          external: mem.external,
          arrayBuffers: mem.arrayBuffers,
          cpuMicros: cpu.user + cpu.system,
          mappings: residentByMapping(),
        });
      } else if (m.type === 'heap-snapshot') {
        send({
          type: 'heap-snapshot',
          file: writeHeapSnapshot(join(m.dir, `registry-${Date.now()}.heapsnapshot`)),
        });
      } else {
        await stop?.();
        process.exit(0);
      }
    })();
  });
}
