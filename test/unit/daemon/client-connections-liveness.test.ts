// The agent's NSC (src/daemon/agent/client-connections.ts) and its data-plane liveness check: what
// it watches for each connection, and what it does when the fake prober says a path died — the
// reselect onto another endpoint, the backoff while a path stays dead, a recovery that makes a
// pending reselect unnecessary, and no watch left after a disconnect. The nsmgr behind it is a small
// chain (updatepath, begin, and endpoints that honour RESELECT_REQUESTED like roundrobin does).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  clone,
  ConnectionContextSchema,
  ConnectionSchema,
  create,
  PathSchema,
  PathSegmentSchema,
  State,
} from '../../../src/api/index.js';
import { createTokenSigner } from '../../../src/api/token/index.js';
import { beginServer, buildChain, updatePathServer } from '../../../src/chain/index.js';
import type { ChainElement } from '../../../src/chain/index.js';
import { ClientConnections } from '../../../src/daemon/agent/client-connections.js';
import type { ClientConnection } from '../../../src/daemon/agent/client-connections.js';
import { Journal } from '../../../src/daemon/agent/journal.js';
import { systemClock, systemRandom } from '../../../src/host/index.js';
import { FakeLivenessProber } from '../../../src/host/fake/index.js';
import { createLogger } from '../../../src/log/index.js';
import type { SourcedConnect } from '../../../src/workloads/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';

/** Endpoints `names`: a request without an endpoint gets the first not used before (its path). */
function endpoints(names: readonly string[], calls: string[]): ChainElement {
  return {
    name: 'fake-endpoints',
    request(_ctx, request) {
      const conn = clone(ConnectionSchema, request.connection ?? create(ConnectionSchema));
      const path = conn.path ?? create(PathSchema);
      let nse = conn.networkServiceEndpointName;
      if (nse === '') {
        const used = new Set(path.pathSegments.slice(path.index + 1).map((s) => s.name));
        if (conn.state !== State.RESELECT_REQUESTED) used.clear();
        nse = names.find((n) => !used.has(n)) ?? names[0] ?? '';
      }
      calls.push(`request ${nse}`);
      conn.networkServiceEndpointName = nse;
      path.pathSegments = [
        ...path.pathSegments.slice(0, path.index + 1),
        create(PathSegmentSchema, { name: nse, id: `${nse}-conn` }),
      ];
      conn.path = path;
      conn.mechanism = request.mechanismPreferences[0] ?? conn.mechanism;
      conn.context = create(ConnectionContextSchema, {
        ipContext: {
          srcIpAddrs: ['10.0.0.2/32'],
          dstIpAddrs: [`169.254.0.${String(names.indexOf(nse) + 1)}/32`],
        },
      });
      return Promise.resolve(conn);
    },
    close(_ctx, conn) {
      calls.push(`close ${conn.networkServiceEndpointName}`);
      return Promise.resolve();
    },
  };
}

interface Fixture {
  readonly clients: ClientConnections;
  readonly prober: FakeLivenessProber;
  readonly calls: string[];
  readonly dataPlane: string[];
}

async function fixture(t: ExecutionContext, names: readonly string[]): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-nsc-liveness-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await createTestCa();
  const svid = await issueSvid(ca, 'spiffe://mesh.test/agent/b');
  const signer = createTokenSigner({
    spiffeId: svid.spiffeId,
    certificatePem: svid.certPem,
    privateKeyPem: svid.keyPem,
    clock: systemClock,
  });
  const calls: string[] = [];
  const dataPlane: string[] = [];
  const prober = new FakeLivenessProber();
  const nsmgr = buildChain('nsmgr', [updatePathServer('b'), beginServer(), endpoints(names, calls)]);
  const clients = new ClientConnections({
    agentName: 'b',
    nsmgr,
    signer,
    self: () => ({ spiffeId: svid.spiffeId, address: 'in-process' }),
    journal: await Journal.open(dir),
    log: createLogger({ level: 'silent' }),
    clock: systemClock,
    random: systemRandom,
    hostsFile: undefined,
    liveness: prober,
    hostDevice: 'nsm-wg0',
    onDataPlane: (e) => dataPlane.push(e),
  });
  t.teardown(() => clients.stop());
  return { clients, prober, calls, dataPlane };
}

const web: SourcedConnect = { service: 'web', labels: {}, source: 'cli' };

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${String(ms)} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const endpointOf = (c: ClientConnection): string | undefined => c.conn?.networkServiceEndpointName;

test('a host connect is pinged through the host device; a dead path is reselected onto the other endpoint', async (t) => {
  const f = await fixture(t, ['e1', 'e2']);
  const c = await f.clients.connect(web);
  t.is(endpointOf(c), 'e1');
  // Grouped by the agent at the far end (here the endpoint's segment right after our nsmgr's).
  t.deepEqual(f.prober.watched(), [
    { netns: undefined, ifName: 'nsm-wg0', src: '10.0.0.2', dst: '169.254.0.1', group: 'agent:e1' },
  ]);

  t.is(f.prober.markDead(), 1);
  t.is(c.state, 'healing', 'status shows it healing at once');
  t.regex(c.lastError ?? '', /data path dead/);
  await until('the connection moves to e2', () => endpointOf(c) === 'e2' && c.heals === 1);
  t.is(c.state, 'up');
  t.deepEqual(f.calls, ['request e1', 'close e1', 'request e2'], 'the old path closed, then the new one');
  t.is(c.heals, 1);
  t.deepEqual(f.dataPlane, ['dead', 'reselected']);
  // The new path is watched, the old one not.
  t.deepEqual(f.prober.watched(), [
    { netns: undefined, ifName: 'nsm-wg0', src: '10.0.0.2', dst: '169.254.0.2', group: 'agent:e2' },
  ]);
  t.is(f.prober.watches.length, 1);
});

test('a path that stays dead is reselected again only after a backoff; a recovery cancels the pending reselect', async (t) => {
  const f = await fixture(t, ['only']);
  const c = await f.clients.connect(web);
  f.prober.markDead();
  await until('the first reselect, at once', () => f.calls.length === 3 && c.heals === 1);
  // The only endpoint again: its new watch dies too. The second reselect waits (0.5-1 s).
  const deadAgain = Date.now();
  t.is(f.prober.markDead(), 1);
  await new Promise((r) => setTimeout(r, 300));
  t.is(f.calls.length, 3, 'no second reselect within 300 ms');
  await until('the second reselect, after its backoff', () => c.heals === 2, 3_000);
  t.true(Date.now() - deadAgain >= 450, 'it waited its backoff');

  // Dead a third time, then the replies come back before the (longer) backoff ends: no reselect.
  f.prober.markDead();
  t.is(f.prober.markAlive(), 1);
  t.is(c.state, 'up');
  t.is(c.lastError, undefined);
  await new Promise((r) => setTimeout(r, 2_200));
  t.is(c.heals, 2, 'the pending reselect was dropped');
  t.deepEqual(f.dataPlane, ['dead', 'reselected', 'dead', 'reselected', 'dead']);
});

test('a netns connect is pinged inside its netns through its own interface; disconnect stops the watch', async (t) => {
  const f = await fixture(t, ['e1']);
  const c = await f.clients.connect({ ...web, netns: 'blue' });
  t.deepEqual(f.prober.watched(), [
    {
      netns: '/var/run/netns/blue',
      ifName: 'nsm0',
      src: '10.0.0.2',
      dst: '169.254.0.1',
      group: 'agent:e1',
    },
  ]);
  await f.clients.disconnect(c);
  t.is(f.prober.watches.length, 0, 'nothing is pinged for a closed connection');
  t.deepEqual(f.calls, ['request e1', 'close e1']);
});

test('connections to the same far agent share a liveness group; a refresh keeps the watch, a reselect to another agent makes a new one', async (t) => {
  const f = await fixture(t, ['e1', 'e2']);
  const web1 = await f.clients.connect(web);
  await f.clients.connect({ ...web, service: 'db' });
  t.deepEqual(
    f.prober.watched().map((x) => x.group),
    ['agent:e1', 'agent:e1'],
    'both land on e1: one group',
  );
  const watchedBefore = f.prober.history.length;
  const refreshedAt = web1.refreshedAt;
  const events = web1.events;
  if (events === undefined) return t.fail('no events of the connection');
  await new Promise((r) => setTimeout(r, 5));
  await events.request({});
  t.not(web1.refreshedAt, refreshedAt, 'the refresh went through');
  t.is(f.prober.history.length, watchedBefore, 'a refresh of the same path keeps its watch');

  const [webTarget] = f.prober.watched();
  t.is(
    f.prober.markDead((x) => x === webTarget),
    1,
  );
  await until('web moves to e2', () => endpointOf(web1) === 'e2');
  t.deepEqual(
    f.prober.watched().map((x) => x.group),
    ['agent:e1', 'agent:e2'],
  );
});
