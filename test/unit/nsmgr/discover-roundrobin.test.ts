// discover + roundrobin in a chain, with the registry behind the shared FakeRegistryLookup and a
// stand-in for the rest of the chain (connect) that fails for chosen endpoints.
import test from 'ava';
import type { NetworkServiceRequest } from '../../../src/api/index.js';
import { create, MechanismSchema, PathSegmentSchema, State, toTimestamp } from '../../../src/api/index.js';
import { buildChain } from '../../../src/chain/index.js';
import type { ChainElement } from '../../../src/chain/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { discoverServer, roundRobinServer, selectedEndpointOf } from '../../../src/nsmgr/index.js';
import { FakeRegistryLookup, registryDown } from '../../../src/nsmgr/fake/index.js';
import { capturingLogger, requestWith, testContext } from '../../helpers/chain.js';

interface Attempt {
  readonly op: 'request' | 'close';
  readonly nse: string;
  /** The url of the endpoint roundrobin/discover put in the context. */
  readonly url: string | undefined;
  /** What the request looked like when this try got it (to see that a failed try does not leak). */
  readonly segments: number;
  readonly mechanism: string | undefined;
}

/** The rest of the chain: records each try, dirties the request, fails for endpoints in `failing`. */
function connectStandIn(attempts: Attempt[], failing: Set<string>): ChainElement {
  return {
    name: 'connect',
    request(ctx, request) {
      const conn = request.connection;
      if (!conn) throw new Error('no connection');
      attempts.push({
        op: 'request',
        nse: conn.networkServiceEndpointName,
        url: selectedEndpointOf(ctx)?.url,
        segments: conn.path?.pathSegments.length ?? 0,
        mechanism: conn.mechanism?.type,
      });
      // What a client chain does before it fails: a new path segment and a mechanism.
      conn.path?.pathSegments.push(create(PathSegmentSchema, { name: 'dirty', id: 'dirty' }));
      conn.mechanism = create(MechanismSchema, { type: 'DIRTY' });
      if (failing.has(conn.networkServiceEndpointName)) {
        return Promise.reject(
          new AgentError('UNAVAILABLE', `endpoint ${conn.networkServiceEndpointName} refused the connection`),
        );
      }
      return Promise.resolve(conn);
    },
    close(ctx, connection) {
      attempts.push({
        op: 'close',
        nse: connection.networkServiceEndpointName,
        url: selectedEndpointOf(ctx)?.url,
        segments: 0,
        mechanism: undefined,
      });
      return Promise.resolve();
    },
  };
}

function setup(opts: { failing?: string[] } = {}) {
  const clock = new FakeClock();
  const lookup = new FakeRegistryLookup();
  const attempts: Attempt[] = [];
  const failing = new Set(opts.failing ?? []);
  const chain = buildChain('nsmgr', [
    discoverServer({ lookup }),
    roundRobinServer(),
    connectStandIn(attempts, failing),
  ]);
  const { log, lines } = capturingLogger();
  const ctx = testContext({ clock, log });
  const live = toTimestamp(clock.now() + 60_000);
  lookup.addService({ name: 'web', payload: 'IP' });
  lookup.addService({ name: 'db', payload: 'IP' });
  for (const n of [1, 2, 3]) {
    lookup.addEndpoint({
      name: `web-${n}`,
      networkServiceNames: ['web'],
      networkServiceLabels: { web: { labels: { n: String(n) } } },
      url: `tcp://10.0.0.${n}:5001`,
      expirationTime: live,
    });
  }
  lookup.addEndpoint({ name: 'db-1', networkServiceNames: ['db'], url: 'tcp://10.0.1.1:5001' });
  lookup.addEndpoint({ name: 'db-2', networkServiceNames: ['db'], url: 'tcp://10.0.1.2:5001' });
  return { clock, lookup, attempts, failing, chain, ctx, lines };
}

function request(
  service = 'web',
  over: (r: NetworkServiceRequest) => void = () => {},
): NetworkServiceRequest {
  const r = requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1', service);
  over(r);
  return r;
}

test('round robin per network service: successive requests go to the next endpoint, with its url', async (t) => {
  const s = setup();
  const got: string[] = [];
  for (let i = 0; i < 4; i++) got.push((await s.chain.request(s.ctx, request())).networkServiceEndpointName);
  // Another service has its own counter: it starts at its first endpoint.
  got.push((await s.chain.request(s.ctx, request('db'))).networkServiceEndpointName);
  got.push((await s.chain.request(s.ctx, request())).networkServiceEndpointName);
  t.deepEqual(got, ['web-1', 'web-2', 'web-3', 'web-1', 'db-1', 'web-2']);
  t.deepEqual(
    s.attempts.slice(0, 3).map((a) => a.url),
    ['tcp://10.0.0.1:5001', 'tcp://10.0.0.2:5001', 'tcp://10.0.0.3:5001'],
  );
});

test('a network service that is not registered is refused with NOT_FOUND saying what to do', async (t) => {
  const s = setup();
  const err = await t.throwsAsync(s.chain.request(s.ctx, request('nope')), { instanceOf: AgentError });
  t.is(err.code, 'NOT_FOUND');
  t.regex(err.message, /^network service nope is not found; register the network service/);
  t.is(s.attempts.length, 0);
});

test('the payload of the request must be the service payload', async (t) => {
  const s = setup();
  const err = await t.throwsAsync(
    s.chain.request(
      s.ctx,
      request('web', (r) => {
        if (r.connection) r.connection.payload = 'ETHERNET';
      }),
    ),
    { instanceOf: AgentError },
  );
  t.is(err.code, 'NOT_FOUND');
  t.regex(err.message, /network service web with payload ETHERNET is not found/);
  t.deepEqual(s.lookup.queries[0], { name: 'web', payload: 'ETHERNET' });
});

test('a request without a network service is refused with INVALID_ARGUMENT', async (t) => {
  const s = setup();
  const err = await t.throwsAsync(s.chain.request(s.ctx, request('')), { instanceOf: AgentError });
  t.is(err.code, 'INVALID_ARGUMENT');
  t.regex(err.message, /set connection.network_service/);
});

test('expired endpoints are not candidates', async (t) => {
  const s = setup();
  const web2 = s.lookup.endpoints.find((e) => e.name === 'web-2');
  if (!web2) throw new Error('setup');
  web2.expirationTime = toTimestamp(s.clock.now()); // expires exactly now: gone
  const got: string[] = [];
  for (let i = 0; i < 3; i++) got.push((await s.chain.request(s.ctx, request())).networkServiceEndpointName);
  t.deepEqual(got, ['web-1', 'web-3', 'web-1']);
  await s.clock.advance(60_000); // the rest expire too
  const err = await t.throwsAsync(s.chain.request(s.ctx, request()), { instanceOf: AgentError });
  t.is(err.code, 'NOT_FOUND');
  t.regex(
    err.message,
    /network service endpoint candidates not found for network service web; no live endpoint/,
  );
});

test('the service matches select among the endpoints by the request labels', async (t) => {
  const s = setup();
  const web = s.lookup.services.find((n) => n.name === 'web');
  if (!web) throw new Error('setup');
  s.lookup.services.splice(s.lookup.services.indexOf(web), 1);
  s.lookup.addService({
    name: 'web',
    matches: [
      { sourceSelector: { tier: 'gold' }, routes: [{ destinationSelector: { n: '3' } }] },
      { sourceSelector: { tier: 'silver' }, routes: [{ destinationSelector: { n: '{{.want}}' } }] },
    ],
  });
  const labelled = (labels: Record<string, string>) =>
    request('web', (r) => {
      if (r.connection) r.connection.labels = labels;
    });
  t.is((await s.chain.request(s.ctx, labelled({ tier: 'gold' }))).networkServiceEndpointName, 'web-3');
  t.is(
    (await s.chain.request(s.ctx, labelled({ tier: 'silver', want: '2' }))).networkServiceEndpointName,
    'web-2',
  );
  const err = await t.throwsAsync(s.chain.request(s.ctx, labelled({ tier: 'bronze' })), {
    instanceOf: AgentError,
  });
  t.is(err.code, 'NOT_FOUND');
  t.regex(
    err.message,
    /candidates not found for network service web; none of the 3 live endpoints is selected/,
  );
  t.regex(err.message, /"tier":"bronze"/);
});

test('a failing candidate falls through to the next, which gets a clean copy of the request', async (t) => {
  const s = setup({ failing: ['web-1'] });
  const req = request();
  const conn = await s.chain.request(s.ctx, req);
  t.is(conn.networkServiceEndpointName, 'web-2');
  t.deepEqual(
    s.attempts.map((a) => [a.nse, a.segments, a.mechanism]),
    [
      ['web-1', 1, undefined],
      ['web-2', 1, undefined],
    ],
  );
  // The caller's request object is not what the tries changed.
  t.is(req.connection?.networkServiceEndpointName, '');
  t.is(req.connection?.path?.pathSegments.length, 1);
  t.true(
    s.lines.some(
      (l) => l.msg === 'roundrobin: endpoint failed; trying the next candidate' && l.endpoint === 'web-1',
    ),
  );
});

test('when every candidate fails: the last error code, each tried once, all named in the message', async (t) => {
  const s = setup({ failing: ['web-1', 'web-2', 'web-3'] });
  const err = await t.throwsAsync(s.chain.request(s.ctx, request()), { instanceOf: AgentError });
  t.is(err.code, 'UNAVAILABLE');
  t.deepEqual(
    s.attempts.map((a) => a.nse),
    ['web-1', 'web-2', 'web-3'],
  );
  t.regex(err.message, /^all 3 endpoints of network service web failed: web-1 \(endpoint web-1 refused/);
  t.regex(err.message, /web-2 \(endpoint web-2 refused.*web-3 \(endpoint web-3 refused/);
  t.true(err.cause instanceof AgentError && err.cause.message.includes('web-3'));
});

test('a request naming its endpoint (refresh) goes there only and does not move the round robin', async (t) => {
  const s = setup({ failing: ['web-3'] });
  const named = (name: string) =>
    request('web', (r) => {
      if (r.connection) r.connection.networkServiceEndpointName = name;
    });
  t.is((await s.chain.request(s.ctx, named('web-2'))).networkServiceEndpointName, 'web-2');
  t.is((await s.chain.request(s.ctx, named('web-2'))).networkServiceEndpointName, 'web-2');
  // No fall through to others: the client asked for this endpoint.
  const failed = await t.throwsAsync(s.chain.request(s.ctx, named('web-3')), { instanceOf: AgentError });
  t.regex(failed.message, /^endpoint web-3 refused/);
  t.is((await s.chain.request(s.ctx, request())).networkServiceEndpointName, 'web-1');
  const gone = await t.throwsAsync(s.chain.request(s.ctx, named('web-9')), { instanceOf: AgentError });
  t.is(gone.code, 'NOT_FOUND');
  t.regex(gone.message, /network service endpoint web-9 of network service web is not found.*reselect/);
});

test('RESELECT_REQUESTED: the endpoint used before (named in the path after this hop) goes last', async (t) => {
  const s = setup();
  const reselect = (used: string) =>
    request('web', (r) => {
      const c = r.connection;
      if (!c?.path) return;
      c.state = State.RESELECT_REQUESTED;
      c.path.pathSegments.push(create(PathSegmentSchema, { name: 'nsmgr', id: 'm1' }));
      c.path.pathSegments.push(create(PathSegmentSchema, { name: used, id: 'e1' }));
      c.path.index = 1; // this hop is the nsmgr
    });
  // The counter is at web-1, which was used before: web-2 instead.
  t.is((await s.chain.request(s.ctx, reselect('web-1'))).networkServiceEndpointName, 'web-2');
  // Without the reselect state the path is not looked at.
  const plain = request('web', (r) => {
    r.connection?.path?.pathSegments.push(create(PathSegmentSchema, { name: 'web-2', id: 'x' }));
  });
  t.is((await s.chain.request(s.ctx, plain)).networkServiceEndpointName, 'web-2');
  // The only endpoint left is still tried when the others fail.
  s.failing.add('web-1');
  s.failing.add('web-2');
  s.attempts.length = 0;
  t.is((await s.chain.request(s.ctx, reselect('web-3'))).networkServiceEndpointName, 'web-3');
  t.deepEqual(
    s.attempts.map((a) => a.nse),
    ['web-1', 'web-2', 'web-3'],
  );
});

test('a registry that cannot be reached fails the request with UNAVAILABLE', async (t) => {
  const s = setup();
  s.lookup.failWith = registryDown();
  const err = await t.throwsAsync(s.chain.request(s.ctx, request()), { instanceOf: AgentError });
  t.is(err.code, 'UNAVAILABLE');
  s.lookup.failWith = new Error('socket hang up');
  const wrapped = await t.throwsAsync(s.chain.request(s.ctx, request()), { instanceOf: AgentError });
  t.is(wrapped.code, 'UNAVAILABLE');
  t.regex(
    wrapped.message,
    /could not look up network service web in the registry: socket hang up; check that/,
  );
});

test('a cancelled request stops trying further candidates', async (t) => {
  const s = setup();
  const abort = new AbortController();
  const ctx = testContext({ clock: s.clock, signal: abort.signal });
  const chain = buildChain('nsmgr', [
    discoverServer({ lookup: s.lookup }),
    roundRobinServer(),
    {
      name: 'connect',
      request: () => {
        abort.abort(new Error('caller went away'));
        return Promise.reject(new Error('refused'));
      },
      close: () => Promise.resolve(),
    },
  ]);
  await t.throwsAsync(chain.request(ctx, request()), { message: 'caller went away' });
});

test('Close finds the endpoint by name for the rest of the chain, and passes through when it cannot', async (t) => {
  const s = setup();
  const conn = await s.chain.request(s.ctx, request());
  await s.chain.close(s.ctx, conn);
  s.lookup.failWith = registryDown();
  await s.chain.close(s.ctx, conn);
  s.lookup.failWith = undefined;
  s.lookup.endpoints.splice(0, 1); // web-1 unregistered
  await s.chain.close(s.ctx, conn);
  await s.chain.close(s.ctx, request().connection ?? conn); // no endpoint name at all
  t.deepEqual(
    s.attempts.filter((a) => a.op === 'close').map((a) => [a.nse, a.url]),
    [
      ['web-1', 'tcp://10.0.0.1:5001'],
      ['web-1', undefined],
      ['web-1', undefined],
      ['', undefined],
    ],
  );
  t.true(s.lines.some((l) => l.msg === 'discover: endpoint lookup failed; closing locally'));
  t.true(
    s.lines.some(
      (l) => l.msg === 'discover: endpoint of the closed connection is not registered; closing locally',
    ),
  );
});

test('roundrobin without discover before it is refused when the chain is built', (t) => {
  const err = t.throws(() => buildChain('nsmgr', [roundRobinServer()]), { instanceOf: AgentError });
  t.is(err.code, 'CHAIN_INVALID');
  t.regex(err.message, /"roundrobin" requires "discover"/);
});
