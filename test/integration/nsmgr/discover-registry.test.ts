// discover + roundrobin with the registry lookup backed by a REAL registry (createRegistryServices
// over gRPC + mTLS on loopback). The endpoints are TCP listeners on loopback; the stand-in for the rest
// of the chain dials the url of the endpoint chosen, so "which endpoint a request reaches" is seen by
// the endpoints themselves, and an endpoint whose port is closed makes the dial fail for real.
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceRequest,
} from '../../../src/api/index.js';
import { create, ConnectionSchema, NetworkServiceRequestSchema } from '../../../src/api/index.js';
import { buildChain } from '../../../src/chain/index.js';
import type { ChainElement } from '../../../src/chain/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { discoverServer, roundRobinServer, selectedEndpointOf } from '../../../src/nsmgr/index.js';
import type { RegistryLookup } from '../../../src/nsmgr/index.js';
import { MemoryStore } from '../../../src/store/index.js';
import { testContext } from '../../helpers/chain.js';
import { RegistryClient, mesh, startRegistry } from '../registry/fixtures.js';

/**
 * The adapter the daemon will have: RegistryLookup over the registry's Find (watch=false). Written
 * here because nsmgr may not import registry code.
 */
function lookupOver(client: RegistryClient): RegistryLookup {
  return {
    async findNetworkServices(query, { signal }) {
      const out: NetworkService[] = [];
      const stream = client.ns.find(
        { networkService: { name: query.name, payload: query.payload ?? '' } },
        { signal, timeoutMs: 5_000 },
      );
      for await (const r of stream) if (r.networkService && !r.deleted) out.push(r.networkService);
      return out;
    },
    async findEndpoints(query, { signal }) {
      const out: NetworkServiceEndpoint[] = [];
      const stream = client.nse.find(
        {
          networkServiceEndpoint: {
            name: query.name ?? '',
            networkServiceNames: [...(query.networkServiceNames ?? [])],
          },
        },
        { signal, timeoutMs: 5_000 },
      );
      for await (const r of stream)
        if (r.networkServiceEndpoint && !r.deleted) out.push(r.networkServiceEndpoint);
      return out;
    },
  };
}

/** A TCP endpoint on loopback that records who reached it. */
async function endpoint(t: ExecutionContext, name: string, hits: string[]): Promise<string> {
  const server: Server = createServer((socket) => {
    socket.once('data', (d) => {
      hits.push(`${name}<-${d.toString('utf8')}`);
      socket.end('ok');
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback url where nothing listens (a port that was just free). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `tcp://127.0.0.1:${port}`;
}

/** Stand-in for connect: dials the chosen endpoint's url and sends the connection id. */
function dialStandIn(closed: (string | undefined)[]): ChainElement {
  return {
    name: 'connect',
    async request(ctx, request) {
      const conn = request.connection;
      const url = selectedEndpointOf(ctx)?.url;
      if (!conn || !url) throw new Error('no endpoint chosen');
      const { hostname, port } = new URL(url);
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host: hostname, port: Number(port) });
        const timer = setTimeout(() => socket.destroy(new Error('dial timed out')), 3_000);
        socket.once('connect', () => socket.write(conn.id));
        socket.once('data', () => {
          clearTimeout(timer);
          socket.destroy();
          resolve();
        });
        socket.once('error', (e) => {
          clearTimeout(timer);
          reject(new AgentError('UNAVAILABLE', `cannot reach ${url}: ${e.message}`));
        });
      });
      return conn;
    },
    close(ctx) {
      closed.push(selectedEndpointOf(ctx)?.url);
      return Promise.resolve();
    },
  };
}

function request(id: string, labels: Record<string, string>, networkService = 'vpn'): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, {
    connection: create(ConnectionSchema, { id, networkService, labels }),
  });
}

test('endpoint selection against a real registry: labels, nodeName template, fallthrough, failing first candidate', async (t) => {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const store = new MemoryStore({ clock });
  t.teardown(() => store.close());
  const { url } = await startRegistry(t, { clock, store });
  const client = new RegistryClient(t, url, m.a, m.ca, clock);

  const hits: string[] = [];
  const urls = {
    'gw-a': await endpoint(t, 'gw-a', hits),
    'gw-b': await endpoint(t, 'gw-b', hits),
    'gw-c': await deadUrl(), // registered, but not running
  };
  await client.registerNs({
    name: 'vpn',
    matches: [
      // Gold clients go to a gold gateway on their own node, if there is one...
      {
        sourceSelector: { tier: 'gold' },
        routes: [{ destinationSelector: { tier: 'gold', nodeName: '{{.nodeName}}' } }],
        fallthrough: true,
      },
      // ...else, like everyone else, to silver first, then gold.
      { routes: [{ destinationSelector: { tier: 'silver' } }, { destinationSelector: { tier: 'gold' } }] },
    ],
  });
  const labels = {
    'gw-a': { tier: 'gold', nodeName: 'host-a' },
    'gw-b': { tier: 'gold', nodeName: 'host-b' },
    'gw-c': { tier: 'silver', nodeName: 'host-b' },
  };
  for (const name of ['gw-a', 'gw-b', 'gw-c'] as const) {
    await client.registerNse({
      name,
      networkServiceNames: ['vpn'],
      networkServiceLabels: { vpn: { labels: labels[name] } },
      url: urls[name],
    });
  }

  const closed: (string | undefined)[] = [];
  const chain = buildChain('nsmgr', [
    discoverServer({ lookup: lookupOver(client) }),
    roundRobinServer(),
    dialStandIn(closed),
  ]);
  // A context (and abort signal) per call, as the gRPC edge gives each call its own.
  const ctx = (): ReturnType<typeof testContext> => testContext({ clock });
  const reach = async (id: string, l: Record<string, string>): Promise<string> =>
    (await chain.request(ctx(), request(id, l))).networkServiceEndpointName;

  // Everyone's match: [gw-c, gw-a, gw-b]; the round robin starts at gw-c, which is down: gw-a instead.
  t.is(await reach('r1', {}), 'gw-a');
  t.deepEqual(hits, ['gw-a<-r1']);
  t.is(await reach('r2', { tier: 'bronze' }), 'gw-a');
  t.is(await reach('r3', {}), 'gw-b');
  // Gold on host-b: only gw-b, every time; on host-a: gw-a.
  t.is(await reach('r4', { tier: 'gold', nodeName: 'host-b' }), 'gw-b');
  t.is(await reach('r5', { tier: 'gold', nodeName: 'host-b' }), 'gw-b');
  t.is(await reach('r6', { tier: 'gold', nodeName: 'host-a' }), 'gw-a');
  // Gold on a node without a gold gateway falls through to the general match (counter 6 of 3: gw-c, down).
  t.is(await reach('r7', { tier: 'gold', nodeName: 'host-z' }), 'gw-a');
  t.deepEqual(hits, ['gw-a<-r1', 'gw-a<-r2', 'gw-b<-r3', 'gw-b<-r4', 'gw-b<-r5', 'gw-a<-r6', 'gw-a<-r7']);

  // gw-b leaves: gold clients on host-b fall through too.
  await client.unregisterNse({ name: 'gw-b' });
  t.is(await reach('r8', { tier: 'gold', nodeName: 'host-b' }), 'gw-a');

  // gw-a leaves as well: only the dead gateway is left, and the error says so.
  await client.unregisterNse({ name: 'gw-a' });
  const err = await t.throwsAsync(chain.request(ctx(), request('r9', {})), { instanceOf: AgentError });
  t.is(err.code, 'UNAVAILABLE');
  t.regex(err.message, /^cannot reach tcp:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  t.is(hits.length, 8);

  // Close looks the endpoint up by name in the registry; a gone endpoint still closes.
  const gwc = create(ConnectionSchema, {
    id: 'r10',
    networkService: 'vpn',
    networkServiceEndpointName: 'gw-c',
  });
  await chain.close(ctx(), gwc);
  await chain.close(
    ctx(),
    create(ConnectionSchema, { id: 'r11', networkService: 'vpn', networkServiceEndpointName: 'gw-a' }),
  );
  t.deepEqual(closed, [urls['gw-c'], undefined]);

  // A service the registry does not know.
  const unknown = await t.throwsAsync(chain.request(ctx(), request('r12', {}, 'nope')), {
    instanceOf: AgentError,
  });
  t.is(unknown.code, 'NOT_FOUND');
  t.regex(unknown.message, /^network service nope is not found/);
});
