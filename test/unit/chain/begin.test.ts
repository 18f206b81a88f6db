import { create } from '@bufbuild/protobuf';
import test from 'ava';
import { ConnectionSchema, MechanismSchema, State } from '../../../src/api/index.js';
import type { EventFactory } from '../../../src/chain/begin/event-factory.js';
import { eventFactoryOf } from '../../../src/chain/begin/event-factory.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { FakeClock, flushMicrotasks } from '../../../src/host/fake/clock.js';
import type { Call } from '../../helpers/chain.js';
import { gate, hook, recorder, requestWith, testContext } from '../../helpers/chain.js';

/** An endpoint stand-in: sets a mechanism on request, counts closes and the connection they carried. */
function endpoint(): ChainElement & { closed: string[]; requests: number } {
  const self = {
    name: 'endpoint',
    closed: [] as string[],
    requests: 0,
    request(_ctx: unknown, r: { connection?: ReturnType<typeof create<typeof ConnectionSchema>> }) {
      self.requests++;
      const conn = r.connection!;
      conn.mechanism = create(MechanismSchema, {
        cls: 'LOCAL',
        type: 'KERNEL',
        parameters: { name: `if-${self.requests}` },
      });
      return Promise.resolve(conn);
    },
    close(_ctx: unknown, c: { mechanism?: { parameters: Record<string, string> } }) {
      self.closed.push(c.mechanism?.parameters.name ?? '(none)');
      return Promise.resolve();
    },
  };
  return self as unknown as ChainElement & { closed: string[]; requests: number };
}

/** A request as a client sends it once it knows the path: our (nsmgr) segment is already in it. */
const req = (id = 'a'): ReturnType<typeof requestWith> =>
  requestWith(
    [
      { name: 'nsc', id },
      { name: 'nsmgr', id: `m-${id}` },
    ],
    0,
    id,
  );
const closeOf = (id = 'a') => create(ConnectionSchema, { id, path: req(id).connection!.path });

/** updatepath → begin → endpoint, and the event factory begin gave the last request (after one). */
function grabbingChain(): {
  chain: ReturnType<typeof buildChain>;
  factory: () => EventFactory;
  ep: ReturnType<typeof endpoint>;
} {
  let grabbed: EventFactory | undefined;
  const ep = endpoint();
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    hook('grab', (_op, ctx) => {
      grabbed = eventFactoryOf(ctx);
    }),
    ep,
  ]);
  const factory = (): EventFactory => {
    if (grabbed === undefined) throw new Error('no request reached the endpoint yet');
    return grabbed;
  };
  return { chain, factory, ep };
}

test('events of one connection id run one at a time, in arrival order', async (t) => {
  const calls: Call[] = [];
  const g = gate();
  let first = true;
  const blockFirst = hook('block', async () => {
    if (first) {
      first = false;
      await g.wait();
    }
  });
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    blockFirst,
    recorder('inner', calls),
  ]);
  const ctx = testContext();
  const p1 = chain.request(ctx, req('a'));
  await flushMicrotasks();
  const p2 = chain.request(ctx, req('a'));
  const p3 = chain.close(ctx, closeOf('a'));
  await flushMicrotasks();
  t.is(calls.length, 0, 'nothing of the second request or the close ran while the first is blocked');
  g.open();
  await Promise.all([p1, p2, p3]);
  t.deepEqual(
    calls.map((c) => `${c.op}:${c.phase}`),
    ['request:pre', 'request:post', 'request:pre', 'request:post', 'close:pre', 'close:post'],
  );
});

test('events of different connection ids run side by side', async (t) => {
  const g = gate();
  const entered: string[] = [];
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    hook('block', async (_op, _ctx, conn) => {
      entered.push(conn?.path?.pathSegments[0]?.id ?? '');
      await g.wait();
    }),
  ]);
  const ctx = testContext();
  const both = Promise.all([chain.request(ctx, req('a')), chain.request(ctx, req('b'))]);
  await flushMicrotasks();
  t.deepEqual(entered.sort(), ['a', 'b']);
  g.open();
  await both;
});

test('close uses the last connection the chain returned, whatever the caller sends', async (t) => {
  const ep = endpoint();
  const chain = buildChain('s', [updatePathServer('nsmgr'), beginServer(), ep]);
  const ctx = testContext();
  const conn = await chain.request(ctx, req('a'));
  t.is(conn.state, State.UP);
  await chain.request(ctx, req('a'));
  // The caller sends a bare connection: only its id and the path.
  await chain.close(ctx, closeOf('a'));
  t.deepEqual(ep.closed, ['if-2'], 'closed with the mechanism of the last (refreshed) connection');
});

test('close of an unknown connection does nothing', async (t) => {
  const ep = endpoint();
  const chain = buildChain('s', [updatePathServer('nsmgr'), beginServer(), ep]);
  await chain.close(testContext(), closeOf('nobody'));
  t.deepEqual(ep.closed, []);
});

test('a failed first request forgets the connection; its event factory is closed', async (t) => {
  let factory: EventFactory | undefined;
  let fail = true;
  const ep = endpoint();
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    hook('flaky', (_op, ctx) => {
      factory = eventFactoryOf(ctx);
      if (fail) throw new AgentError('UNAVAILABLE', 'endpoint down');
    }),
    ep,
  ]);
  const ctx = testContext();
  await t.throwsAsync(chain.request(ctx, req('a')), { message: 'endpoint down' });
  t.is(factory?.state, 'closed');
  t.true(factory?.signal.aborted);
  // Close of the failed connection finds nothing to close.
  await chain.close(ctx, closeOf('a'));
  t.deepEqual(ep.closed, []);
  fail = false;
  await chain.request(ctx, req('a'));
  t.is(factory?.state, 'established', 'a new request starts fresh');
});

test('a failed refresh keeps the established connection', async (t) => {
  let fail = false;
  const ep = endpoint();
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    hook('flaky', (op) => {
      if (fail && op === 'request') throw new AgentError('UNAVAILABLE', 'endpoint down');
    }),
    ep,
  ]);
  const ctx = testContext();
  const conn = await chain.request(ctx, req('a'));
  fail = true;
  await t.throwsAsync(chain.request(ctx, req('a')));
  await chain.close(ctx, conn);
  t.deepEqual(ep.closed, ['if-1']);
});

test('refresh from inside the chain re-enters just after begin with the stored request', async (t) => {
  const outer: Call[] = [];
  const inner: Call[] = [];
  let factory: EventFactory | undefined;
  const ep = endpoint();
  const chain = buildChain('s', [
    recorder('outer', outer),
    updatePathServer('nsmgr'),
    beginServer(),
    hook('grab', (_op, ctx) => {
      factory = eventFactoryOf(ctx);
    }),
    recorder('inner', inner),
    ep,
  ]);
  await chain.request(testContext(), req('a'));
  t.is(factory?.connection?.mechanism?.parameters.name, 'if-1');
  await factory!.request();
  t.is(outer.length, 2, 'elements before begin are not run again');
  t.deepEqual(
    inner.map((c) => `${c.op}:${c.phase}:${c.index}`),
    ['request:pre:1', 'request:post:1', 'request:pre:1', 'request:post:1'],
    'the refresh runs with our own segment current',
  );
  t.is(factory?.connection?.mechanism?.parameters.name, 'if-2', 'the refreshed connection is remembered');
  await factory!.close();
  t.deepEqual(ep.closed, ['if-2']);
  t.true(factory!.signal.aborted);
  await factory!.request();
  t.is(ep.requests, 2, 'a closed connection is not refreshed');
});

test('reselect from inside the chain closes the old path and requests with mechanism and endpoint cleared', async (t) => {
  let factory: EventFactory | undefined;
  const seen: { state: State; mech: string; nse: string }[] = [];
  const ep = endpoint();
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    hook('grab', (op, ctx, conn) => {
      factory = eventFactoryOf(ctx);
      if (op === 'request') {
        seen.push({
          state: conn!.state,
          mech: conn!.mechanism?.type ?? '',
          nse: conn!.networkServiceEndpointName,
        });
        conn!.networkServiceEndpointName = 'nse-1';
      }
    }),
    ep,
  ]);
  await chain.request(testContext(), req('a'));
  await factory!.request({ reselect: true });
  t.deepEqual(ep.closed, ['if-1']);
  t.deepEqual(seen[1], { state: State.RESELECT_REQUESTED, mech: '', nse: '' });
  t.is(factory?.connection?.state, State.UP);
});

test('a request arriving with RESELECT_REQUESTED closes the established path first', async (t) => {
  const ep = endpoint();
  const chain = buildChain('s', [updatePathServer('nsmgr'), beginServer(), ep]);
  const ctx = testContext();
  const conn = await chain.request(ctx, req('a'));
  conn.state = State.RESELECT_REQUESTED;
  conn.mechanism = undefined;
  const again = await chain.request(ctx, { ...req('a'), connection: conn });
  t.deepEqual(ep.closed, ['if-1']);
  t.is(again.mechanism?.parameters.name, 'if-2');
  t.is(again.state, State.UP);
});

test('a caller that gives up gets CANCELLED at once; the event still completes', async (t) => {
  const g = gate();
  const ep = endpoint();
  const chain = buildChain('s', [updatePathServer('nsmgr'), beginServer(), hook('slow', () => g.wait()), ep]);
  const ac = new AbortController();
  const ctx = testContext({ signal: ac.signal });
  const p = chain.request(ctx, req('a'));
  await flushMicrotasks();
  ac.abort();
  const err = await t.throwsAsync(p, { instanceOf: AgentError });
  t.is(err.code, 'CANCELLED');
  g.open();
  await flushMicrotasks();
  t.is(ep.requests, 1);
  // The completed event left an established connection, so Close reaches the endpoint.
  await chain.close(testContext(), closeOf('a'));
  t.deepEqual(ep.closed, ['if-1']);
});

test("an event is bounded by begin's own time limit, not by the caller", async (t) => {
  const clock = new FakeClock();
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer({ eventTimeoutMs: 5_000 }),
    hook('hang', (_op, ctx) => ctx.clock.sleep(3_600_000, ctx.signal)),
  ]);
  const p = chain.request(testContext({ clock }), req('a'));
  await clock.advance(4_999);
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flushMicrotasks();
  t.false(settled);
  await clock.advance(1);
  await t.throwsAsync(p, { message: /event took longer than 5000 ms/ });
  t.is(clock.pending, 0, 'no timer left behind');
});

test('a request without a connection id is refused with a hint', async (t) => {
  const chain = buildChain('s', [
    { ...updatePathServer('x'), request: (ctx, r, next) => next.request(ctx, r) },
    beginServer(),
  ]);
  const err = await t.throwsAsync(
    chain.request(testContext(), { ...req('a'), connection: create(ConnectionSchema) }),
    {
      instanceOf: AgentError,
    },
  );
  t.regex(err.message, /no connection id; put updatepath before begin/);
});

test('onClosed: each listener once, when the connection is closed; at once on a closed one', async (t) => {
  const { chain, factory } = grabbingChain();
  const ctx = testContext();
  const conn = await chain.request(ctx, req('a'));
  const heard: string[] = [];
  const first = (e: EventFactory): void => void heard.push(`first:${e.id}:${e.state}`);
  const second = (e: EventFactory): void => void heard.push(`second:${e.id}`);
  factory().onClosed(first);
  factory().onClosed(second);
  factory().onClosed(first);
  await chain.request(ctx, req('a'));
  t.deepEqual(heard, [], 'a refresh closes nothing');
  await chain.close(ctx, conn);
  t.deepEqual(heard, ['first:m-a:closed', 'second:m-a'], 'a listener given twice is called once');
  factory().onClosed(second);
  t.deepEqual(heard.at(-1), 'second:m-a', 'a listener of a closed connection is called at once');
  t.true(factory().signal.aborted, 'a signal asked for after the close is aborted already');
});

test('the kept connection is a copy: changing what `connection` returned changes no later event', async (t) => {
  const { chain, factory, ep } = grabbingChain();
  const returned = await chain.request(testContext(), req('a'));
  const copy = factory().connection!;
  copy.mechanism!.parameters['name'] = 'tampered';
  returned.networkService = 'tampered';
  t.is(factory().connection?.mechanism?.parameters['name'], 'if-1');
  t.is(factory().connection?.networkService, 'web');
  await factory().close();
  t.deepEqual(ep.closed, ['if-1'], 'Close carries the connection as the chain returned it');
});
