// Heal across agents over real mTLS gRPC on loopback: agent B's chain (begin, heal, connect) calls
// agent A's chain (begin, monitor, endpoint), and watches A through MonitorConnections. When A restarts
// with an empty monitor, B must re-request its connections within 2 s of A being back.
import 'reflect-metadata';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { MonitorConnectionService, NetworkServiceService } from '../../src/api/index.js';
import type { Connection } from '../../src/api/index.js';
import { clientCredentials, dial, serverCredentials, startServer } from '../../src/api/grpc/index.js';
import type { GrpcServer } from '../../src/api/grpc/index.js';
import { beginServer } from '../../src/chain/begin/server.js';
import { buildChain } from '../../src/chain/core/chain.js';
import { ChainContext } from '../../src/chain/core/context.js';
import type { ChainElement } from '../../src/chain/core/element.js';
import { connectClient, networkServiceOf } from '../../src/chain/edge/index.js';
import { healClient } from '../../src/chain/heal/index.js';
import type { HealEvent } from '../../src/chain/heal/index.js';
import { ConnectionMonitor, monitorConnectionService, monitorServer } from '../../src/chain/monitor/index.js';
import { updatePathServer } from '../../src/chain/updatepath/server.js';
import { systemClock } from '../../src/host/clock.js';
import { systemRandom } from '../../src/host/random.js';
import { silentLogger } from '../../src/log/logger.js';
import { requestWith } from '../helpers/chain.js';
import { createTestCa, issueSvid } from '../helpers/pki.js';
import type { TestCa } from '../helpers/pki.js';

const ctx = (): ChainContext =>
  new ChainContext({ log: silentLogger(), clock: systemClock, random: systemRandom });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
  return Date.now() - start;
}

/** One incarnation of agent A: a fresh monitor and endpoint, as after a restart. */
interface AgentA {
  readonly server: GrpcServer;
  readonly monitor: ConnectionMonitor;
  /** Requests and closes its endpoint saw, by A's connection id. */
  readonly requests: string[];
  readonly closes: string[];
}

async function startA(ca: TestCa, keys: { chainPem: string; keyPem: string }, port: number): Promise<AgentA> {
  const monitor = new ConnectionMonitor();
  const requests: string[] = [];
  const closes: string[] = [];
  const endpoint: ChainElement = {
    name: 'endpoint',
    request(_ctx, r) {
      requests.push(r.connection!.id);
      return Promise.resolve(r.connection!);
    },
    close(_ctx, c) {
      closes.push(c.id);
      return Promise.resolve();
    },
  };
  const chain = buildChain('agent-a', [
    updatePathServer('agent-a'),
    beginServer(),
    monitorServer(monitor),
    endpoint,
  ]);
  const server = await startServer({
    listen: [
      {
        url: `tcp://127.0.0.1:${port}`,
        credentials: serverCredentials({
          bundlePem: ca.certPem,
          certChainPem: keys.chainPem,
          keyPem: keys.keyPem,
          requireClientCert: true,
        }),
      },
    ],
    log: silentLogger(),
    services: [
      networkServiceOf(chain, { log: silentLogger() }),
      monitorConnectionService(monitor, { log: silentLogger() }),
    ],
  });
  return { server, monitor, requests, closes };
}

async function setup(t: ExecutionContext) {
  const ca = await createTestCa('mesh.test');
  const aKeys = await issueSvid(ca, 'spiffe://mesh.test/agent/host-a');
  const bKeys = await issueSvid(ca, 'spiffe://mesh.test/agent/host-b');
  const a = { current: await startA(ca, aKeys, 0) };
  const port = a.current.server.port ?? 0;
  const url = `tcp://127.0.0.1:${port}`;
  t.teardown(() => a.current.server.close({ graceMs: 0 }));

  // Agent B's channel to A: reconnect fast (heal must be fast; see the report for the daemon's dial).
  const connection = dial(url, {
    credentials: clientCredentials({
      bundlePem: ca.certPem,
      certChainPem: bKeys.chainPem,
      keyPem: bKeys.keyPem,
      expectedServerId: 'spiffe://mesh.test/agent/host-a',
    }),
    tuning: { initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 500 },
  });
  t.teardown(() => connection.close());
  const monitorClient = connection.client(MonitorConnectionService);
  const events: HealEvent[] = [];
  const subscribes: string[] = [];
  /** Cuts the open monitor streams from B's side, as a broken network would. */
  const cuts = new Set<AbortController>();
  const heal = healClient({
    selfName: 'agent-b',
    remoteOf: () => url,
    subscribe: (target, selector, signal) => {
      subscribes.push(target);
      const cut = new AbortController();
      cuts.add(cut);
      const stream = monitorClient.monitorConnections(selector, {
        signal: AbortSignal.any([signal, cut.signal]),
      });
      stream.call.once('status', () => cuts.delete(cut));
      return stream;
    },
    onEvent: (e) => events.push(e),
  });
  const chainB = buildChain('agent-b', [
    updatePathServer('agent-b'),
    beginServer(),
    heal,
    connectClient(connection.client(NetworkServiceService), { timeoutMs: 2_000 }),
  ]);
  const restartA = async (downMs: number): Promise<number> => {
    await a.current.server.close({ graceMs: 0 });
    await sleep(downMs);
    a.current = await startA(ca, aKeys, port);
    return Date.now();
  };
  const cut = () => {
    for (const c of cuts) c.abort();
  };
  return { a, url, chainB, heal, events, subscribes, restartA, cut };
}

/** A's connection id for a connection B returned (the third segment of the path). */
const aIdOf = (conn: Connection): string => conn.path!.pathSegments[2]!.id;

test('agent A restarts with no memory of its connections: B re-requests both within 2 s of A being back', async (t) => {
  const s = await setup(t);
  const c1 = await s.chainB.request(ctx(), requestWith([{ name: 'nsc', id: 'n1' }], 0, 'n1'));
  const c2 = await s.chainB.request(ctx(), requestWith([{ name: 'nsc', id: 'n2' }], 0, 'n2'));
  t.is(s.a.current.monitor.size, 2);
  await until('B to watch A', () => s.heal.remotes()[0]?.live === true);
  t.deepEqual(s.subscribes, [s.url], 'two connections, one monitor stream');

  const backAt = await s.restartA(300);
  t.is(s.a.current.monitor.size, 0, 'the new A starts empty');
  await until('B to re-request both connections at the new A', () => s.a.current.monitor.size === 2, 4_000);
  const healMs = Date.now() - backAt;
  t.true(healMs < 2_000, `healed ${healMs} ms after A was back`);
  t.log(`healed ${healMs} ms after A was back; ${s.subscribes.length} subscribe calls`);
  t.deepEqual(
    s.a.current.monitor
      .list()
      .map((c) => c.id)
      .sort(),
    [aIdOf(c1), aIdOf(c2)].sort(),
    'the same path rebuilds the same connections (same ids at A)',
  );
  t.deepEqual(
    s.events
      .filter((e) => e.kind === 'lost')
      .map((e) => e.connectionId)
      .sort(),
    [c1.path!.pathSegments[1]!.id, c2.path!.pathSegments[1]!.id].sort(),
  );
  await until('both healed', () => s.events.filter((e) => e.kind === 'healed').length === 2);
  await until('one stream at the new A', () => s.a.current.monitor.subscriberCount === 1);
  t.is(s.a.current.monitor.subscriberCount, 1, 'still exactly one monitor stream for the URL');

  // Close both: the stream ends and a later restart of A brings no re-request.
  await s.chainB.close(ctx(), c1);
  await s.chainB.close(ctx(), c2);
  t.is(s.a.current.monitor.size, 0);
  t.deepEqual(s.heal.remotes(), []);
  await until('the stream to A to end', () => s.a.current.monitor.subscriberCount === 0);
  const subscribed = s.subscribes.length;
  await s.restartA(100);
  await sleep(1_500);
  t.deepEqual(s.a.current.requests, [], 'nothing re-requests closed connections');
  t.is(s.subscribes.length, subscribed, 'and nothing resubscribes');
});

test('only the monitor stream breaks and A still knows the connections: the re-request is harmless', async (t) => {
  const s = await setup(t);
  const c1 = await s.chainB.request(ctx(), requestWith([{ name: 'nsc', id: 'n1' }], 0, 'n1'));
  const c2 = await s.chainB.request(ctx(), requestWith([{ name: 'nsc', id: 'n2' }], 0, 'n2'));
  await until('B to watch A', () => s.heal.remotes()[0]?.live === true);
  const before = s.a.current.monitor
    .list()
    .map((c) => c.id)
    .sort();

  s.cut();
  await until('both re-requested', () => s.events.filter((e) => e.kind === 'healed').length === 2, 3_000);
  t.deepEqual(
    s.events.map((e) => e.kind),
    ['lost', 'lost', 'healed', 'healed'],
  );
  t.deepEqual(s.a.current.requests.length, 4, 'A saw each connection requested again (a refresh)');
  t.deepEqual(s.a.current.closes, [], 'and closed nothing');
  t.deepEqual(
    s.a.current.monitor
      .list()
      .map((c) => c.id)
      .sort(),
    before,
    'A holds the same connections',
  );
  t.deepEqual(before, [aIdOf(c1), aIdOf(c2)].sort());
  t.is(s.subscribes.length, 2, 'one resubscribe after the cut');
  await until('one stream at A', () => s.a.current.monitor.subscriberCount === 1);
  await s.chainB.close(ctx(), c1);
  await s.chainB.close(ctx(), c2);
  t.deepEqual(s.a.current.closes.length, 2);
});
