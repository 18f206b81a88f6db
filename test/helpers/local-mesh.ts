// The local mesh (scripts/lib/local-mesh.ts) as the agent e2e tests use it: one mesh per test file
// (root only; skipped otherwise), agent logs printed when a test fails, and the steps the
// acceptance tests share — serve a page on host A, expose it, connect from B, read a host's data
// plane (links with their index, addresses, routes, WireGuard peers) to compare before and after.
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { ConnectionRow, ExposeRow, StatusReport } from '../../src/localapi/index.js';
import {
  addressOf,
  httpGet,
  repoRoot,
  runCommand,
  startHttpServer,
  startLocalMesh,
} from '../../scripts/lib/local-mesh.js';
import type { LocalMesh, LocalMeshOptions, MeshAgent, MeshProcess } from '../../scripts/lib/local-mesh.js';
import { listWireGuardGoProcesses } from '../../src/host/wireguard/index.js';
import { hostSnapshot, netnsSnapshot } from './host-snapshot.js';
import type { NetnsSnapshot } from './host-snapshot.js';

export * from '../../scripts/lib/local-mesh.js';
export type { ConnectionRow, ExposeRow, ServicesReport, StatusReport } from '../../src/localapi/index.js';

export const isRoot = process.getuid?.() === 0;
/** test.serial as root, test.serial.skip otherwise (network namespaces need root). */
export const rootSerial: (title: string, body: (t: ExecutionContext) => Promise<void>) => void = isRoot
  ? (title, body) => test.serial(title, body)
  : (title, body) => test.serial.skip(title, body);

/**
 * One mesh for the test file: built in test.before (root only), closed in test.after.always (which
 * then fails if anything of the bed is left); when a test fails, the tail of every agent's and the
 * server's log goes to its t.log.
 */
export function useLocalMesh(o: LocalMeshOptions): () => LocalMesh {
  let mesh: LocalMesh | undefined;
  if (!isRoot) return () => assertMesh(mesh);
  test.before(async () => {
    // NSM_AGENT_E2E_BINARY=dist/nsm-agent runs the whole mesh on the built binary instead of the source.
    const binary = process.env.NSM_AGENT_E2E_BINARY;
    mesh = await startLocalMesh({
      handleSignals: false,
      ...(binary === undefined || binary === '' ? {} : { binary: resolve(repoRoot, binary) }),
      ...o,
    });
  });
  test.afterEach.always((t) => {
    if (t.passed || mesh === undefined) return;
    for (const a of mesh.agents) t.log(`--- ${a.netns} agent log ---\n${lastLines(a.logs(), 40)}`);
    t.log(`--- control server log ---\n${lastLines(mesh.server.logs(), 20)}`);
  });
  test.after.always(async () => {
    await mesh?.close();
    // Nothing of the bed is left: no namespace, wireguard-go, UAPI socket or root link.
    const left = await hostSnapshot(o.prefix);
    if (left.netns.length + left.wireguardGo.length + left.sockets.length + left.rootLinks.length > 0)
      throw new Error(`the local mesh ${o.prefix} left: ${JSON.stringify(left)}`);
  });
  return () => assertMesh(mesh);
}

function assertMesh(mesh: LocalMesh | undefined): LocalMesh {
  if (mesh === undefined) throw new Error('the local mesh did not start (see test.before)');
  return mesh;
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** The page host A serves. */
export function pageFor(agent: MeshAgent): string {
  return `<!doctype html><title>nsm-agent e2e</title><h1>served by ${agent.netns}</h1>\n`;
}

/** python3 -m http.server 8080 on `agent` serving pageFor(agent). */
export function serveWeb(mesh: LocalMesh, agent: MeshAgent, port = 8080): Promise<MeshProcess> {
  return startHttpServer(agent, join(mesh.workDir, `${agent.netns}-site`), pageFor(agent), port);
}

/** `expose <service> [extra] --json` on `agent`; fails the test with the CLI's stderr otherwise. */
export async function expose(
  t: ExecutionContext,
  agent: MeshAgent,
  service: string,
  extra: readonly string[] = [],
): Promise<ExposeRow> {
  const r = await agent.cli(['expose', service, ...extra, '--json']);
  if (r.code !== 0)
    throw new Error(`expose ${service} on ${agent.netns} exited ${String(r.code)}: ${r.stderr}`);
  t.log(`expose ${service} on ${agent.netns}: ${r.ms} ms`);
  return JSON.parse(r.stdout) as ExposeRow;
}

/** `connect <service> --json` on `agent`, timed. */
export async function connect(
  t: ExecutionContext,
  agent: MeshAgent,
  service: string,
  extra: readonly string[] = [],
): Promise<ConnectionRow> {
  const r = await agent.cli(['connect', service, ...extra, '--json']);
  if (r.code !== 0)
    throw new Error(`connect ${service} on ${agent.netns} exited ${String(r.code)}: ${r.stderr}`);
  t.log(`connect ${service} on ${agent.netns}: ${r.ms} ms (CLI process included)`);
  return JSON.parse(r.stdout) as ConnectionRow;
}

export function serviceIp(row: Pick<ConnectionRow, 'serviceAddresses'>): string {
  const first = row.serviceAddresses[0];
  if (first === undefined) throw new Error(`the connection has no service address: ${JSON.stringify(row)}`);
  return addressOf(first);
}

/** GET http://<ip>:<port>/ from `agent`, retried for up to `timeoutMs` (the first handshake). */
export async function getPage(
  agent: MeshAgent,
  ip: string,
  port = 8080,
  timeoutMs = 10_000,
): Promise<{ status?: number; body?: string; error: string; ms: number }> {
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await httpGet(agent, `http://${ip}:${port}/`, 2_000);
    if (r.status !== undefined || Date.now() > deadline)
      return {
        ...(r.status === undefined ? {} : { status: r.status }),
        ...(r.body === undefined ? {} : { body: r.body }),
        error: r.stderr.trim(),
        ms: Math.round(performance.now() - started),
      };
  }
}

export function connectionOf(status: StatusReport, service: string): ConnectionRow | undefined {
  return status.connections.find((c) => c.service === service && c.netns === undefined);
}

/** Polls `probe` until it returns a value (not undefined), at most `timeoutMs`; the value and the time. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 50,
  /** What was seen last, for the error when time runs out. */
  seen?: () => string,
): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return { value, ms: Math.round(performance.now() - started) };
    } catch (e: unknown) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${timeoutMs} ms${lastError === '' ? '' : ` (${lastError})`}${seen === undefined ? '' : `; last seen: ${seen()}`}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A host's data plane as a user would inspect it: `ip link/addr/route` and `wg show`. */
export interface DataplaneSnapshot extends NetnsSnapshot {
  /** `index name` of every link: an adopted interface keeps its index, a recreated one does not. */
  readonly linkIndexes: readonly string[];
  /** `public-key endpoint allowed-ips` of every peer of the agent's WireGuard device. */
  readonly peers: readonly string[];
}

export async function dataplaneSnapshot(
  agent: Pick<MeshAgent, 'netns' | 'wgDevice'>,
): Promise<DataplaneSnapshot> {
  const links = await runCommand(['ip', '-j', 'link', 'show'], { netns: agent.netns });
  const linkIndexes = (JSON.parse(links.stdout) as { ifindex: number; ifname: string }[])
    .map((l) => `${l.ifindex} ${l.ifname}`)
    .sort();
  // `wg show <dev> dump`: line 1 is the interface (with its private key: dropped at once), then a
  // line per peer. No device (nothing connected yet): no peers.
  const dump = await runCommand(['wg', 'show', agent.wgDevice, 'dump'], { netns: agent.netns });
  const peers =
    dump.code === 0
      ? dump.stdout
          .trim()
          .split('\n')
          .slice(1)
          .filter((l) => l !== '')
          .map((l) => {
            const [publicKey, , endpoint, allowedIps] = l.split('\t');
            return `${publicKey ?? ''} ${endpoint ?? ''} ${allowedIps ?? ''}`;
          })
          .sort()
      : [];
  return { ...(await netnsSnapshot(agent.netns)), linkIndexes, peers };
}

/** The pid of the wireguard-go serving `device`, if one runs (userspace backend). */
export async function wireguardGoPid(device: string): Promise<number | undefined> {
  return (await listWireGuardGoProcesses()).find((p) => p.device === device)?.pid;
}

/**
 * One call to an agent's local API as curl --unix-socket would make it (HTTP + JSON on api.sock):
 * the HTTP status and the parsed body, so a test can read an error's code (PERMISSION_DENIED…).
 */
export function apiCall(
  agent: Pick<MeshAgent, 'runDir'>,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: join(agent.runDir, 'api.sock'),
        method,
        path,
        agent: false,
        timeout: timeoutMs,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: text });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
