// The registry server side of bench/registry.ts: runs in a child process (forked, IPC channel) so
// its RSS and CPU are its own. Kept apart from the parent's code so that esbuild can bundle just
// this (and the src/ code it uses) for an RSS that reflects the shipped code, not tsx.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

export type ToChild = { type: 'start'; pki: Pki; store: string } | { type: 'rss' } | { type: 'stop' };
export type ToParent =
  | { type: 'started'; port: number }
  | { type: 'rss'; rss: number; heapUsed: number; external: number; cpuMicros: number };

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
