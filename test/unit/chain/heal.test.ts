import test from 'ava';
import {
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionSchema,
  PathSchema,
  State,
  create,
} from '../../../src/api/index.js';
import type { Connection, ConnectionEvent, MonitorScopeSelector } from '../../../src/api/index.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { healClient } from '../../../src/chain/heal/index.js';
import type { HealEvent } from '../../../src/chain/heal/index.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { FakeClock, flushMicrotasks } from '../../../src/host/fake/clock.js';
import { gate, requestWith, testContext } from '../../helpers/chain.js';

/** One fake MonitorConnections stream, fed by the test. */
class FakeStream implements AsyncIterable<ConnectionEvent> {
  readonly #queue: ConnectionEvent[] = [];
  #ended = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(
    readonly url: string,
    readonly selector: MonitorScopeSelector,
    readonly signal: AbortSignal,
  ) {
    signal.addEventListener('abort', () => this.#wake?.(), { once: true });
  }

  get cancelled(): boolean {
    return this.signal.aborted;
  }

  push(type: ConnectionEventType, connections: Connection[] = []): void {
    const byId: Record<string, Connection> = {};
    for (const c of connections) byId[c.id] = c;
    this.#queue.push(create(ConnectionEventSchema, { type, connections: byId }));
    this.#wake?.();
  }

  fail(error = new Error('connection reset')): void {
    this.#failure = error;
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ConnectionEvent> {
    for (;;) {
      if (this.signal.aborted) throw new Error('cancelled');
      const e = this.#queue.shift();
      if (e) {
        yield e;
        continue;
      }
      if (this.#failure) throw this.#failure;
      if (this.#ended) return;
      await new Promise<void>((r) => (this.#wake = r));
    }
  }
}

interface Seen {
  id: string;
  at: number;
  state: string;
  endpoint: string;
}

/** Agent B's chain up to the remote: updatepath, begin, heal, and a fake `connect` to the remote. */
function setup(opts: { remoteOf?: (id: string) => string | undefined; maxConcurrentHeals?: number } = {}) {
  const clock = new FakeClock();
  const start = clock.now();
  const streams: FakeStream[] = [];
  const events: HealEvent[] = [];
  const requests: Seen[] = [];
  const closes: string[] = [];
  const remote = {
    fail: false,
    block: undefined as Promise<void> | undefined,
    closeBlock: undefined as Promise<void> | undefined,
    inFlight: 0,
    maxInFlight: 0,
  };
  const connect: ChainElement = {
    name: 'connect',
    async request(_ctx, r) {
      const conn = r.connection!;
      requests.push({
        id: conn.id,
        at: clock.now() - start,
        state: State[conn.state],
        endpoint: conn.networkServiceEndpointName,
      });
      remote.inFlight++;
      remote.maxInFlight = Math.max(remote.maxInFlight, remote.inFlight);
      try {
        if (remote.block) await remote.block;
        if (remote.fail) throw new Error('remote refused');
      } finally {
        remote.inFlight--;
      }
      conn.networkServiceEndpointName = 'nse-1';
      return conn;
    },
    async close(_ctx, conn) {
      closes.push(conn.id);
      if (remote.closeBlock) await remote.closeBlock;
    },
  };
  const heal = healClient({
    selfName: 'agent-b',
    // Keyed by the NSC's id (segment 0), which the test chooses; B's own ids are generated.
    remoteOf: (_ctx, r) =>
      opts.remoteOf ? opts.remoteOf(r.connection?.path?.pathSegments[0]?.id ?? '') : 'tcp://agent-a:5001',
    subscribe: (url, selector, signal) => {
      const s = new FakeStream(url, selector, signal);
      streams.push(s);
      return s;
    },
    onEvent: (e) => events.push(e),
    ...(opts.maxConcurrentHeals === undefined ? {} : { maxConcurrentHeals: opts.maxConcurrentHeals }),
  });
  const chain = buildChain('agent-b', [updatePathServer('agent-b'), beginServer(), heal, connect]);
  const ctx = testContext({ clock });
  /** Connects NSC connection `nscId`; returns B's id for it. */
  const connect1 = async (nscId: string): Promise<{ bId: string; conn: Connection }> => {
    const conn = await chain.request(ctx, requestWith([{ name: 'nsc', id: nscId }], 0, nscId));
    return { bId: conn.path!.pathSegments[1]!.id, conn };
  };
  /** The connection as the remote (agent-a) would report it. */
  const asRemote = (bId: string, state = State.UP): Connection =>
    create(ConnectionSchema, {
      id: `a-of-${bId}`,
      networkService: 'web',
      state,
      path: create(PathSchema, {
        index: 2,
        pathSegments: [
          { name: 'nsc', id: 'x' },
          { name: 'agent-b', id: bId },
          { name: 'agent-a', id: `a-of-${bId}` },
        ],
      }),
    });
  const kinds = () => events.map((e) => `${e.kind}:${e.connectionId}`);
  return { clock, chain, ctx, heal, streams, events, kinds, requests, closes, remote, connect1, asRemote };
}

test('one monitor stream per remote URL, selecting connections through this hop, ended with the last connection', async (t) => {
  const s = setup({
    remoteOf: (id) => (id.startsWith('local') ? undefined : `tcp://${id.split('-')[0]}:5001`),
  });
  const one = await s.connect1('a-1');
  const two = await s.connect1('a-2');
  await s.connect1('local-1');
  await s.connect1('c-1');
  t.deepEqual(
    s.streams.map((x) => x.url),
    ['tcp://a:5001', 'tcp://c:5001'],
    'two connections to a share one stream; the local one has none',
  );
  t.deepEqual(
    s.streams[0]!.selector.pathSegments.map((p) => ({ name: p.name, id: p.id })),
    [{ name: 'agent-b', id: '' }],
  );
  t.deepEqual(
    s.heal.remotes().map((r) => [r.url, r.connections]),
    [
      ['tcp://a:5001', 2],
      ['tcp://c:5001', 1],
    ],
  );
  await s.chain.close(s.ctx, one.conn);
  t.false(s.streams[0]!.cancelled, 'still one connection to a');
  await s.chain.close(s.ctx, two.conn);
  t.true(s.streams[0]!.cancelled, 'the last connection to a closed: its stream is cancelled');
  t.false(s.streams[1]!.cancelled);
  await s.clock.advance(10_000);
  t.is(s.streams.length, 2, 'a cancelled stream is not resubscribed');
  t.deepEqual(s.events, [], 'closing is no loss');
});

test('stream lost: connections are reported lost, and re-requested only once the new stream sends its initial state', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const two = await s.connect1('n2');
  const first = s.streams[0]!;
  first.push(ConnectionEventType.INITIAL_STATE_TRANSFER, [s.asRemote(one.bId), s.asRemote(two.bId)]);
  await flushMicrotasks();
  t.is(s.requests.length, 2, 'the first initial state re-requests nothing');

  first.fail(new Error('remote restarted'));
  await flushMicrotasks();
  t.deepEqual(s.kinds(), [`lost:${one.bId}`, `lost:${two.bId}`]);
  t.deepEqual(s.heal.remotes()[0], { url: 'tcp://agent-a:5001', live: false, connections: 2 });
  // Full jitter with random 0.5: 50 ms, then 100, 200 … while resubscribing fails.
  await s.clock.advance(49);
  t.is(s.streams.length, 1);
  await s.clock.advance(1);
  t.is(s.streams.length, 2);
  s.streams[1]!.fail(new Error('connection refused'));
  await s.clock.advance(100);
  t.is(s.streams.length, 3);
  t.is(s.events.length, 2, 'lost is reported once per outage');
  t.is(s.requests.length, 2, 'nothing is re-requested while the remote is away');

  s.streams[2]!.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  await flushMicrotasks();
  t.deepEqual(
    s.requests.slice(2).map((r) => r.id),
    [one.bId, two.bId],
    'the remote forgot them: both re-requested with the same path',
  );
  t.deepEqual(s.kinds().slice(2), [`healed:${one.bId}`, `healed:${two.bId}`]);
  t.true(s.heal.remotes()[0]!.live);

  // A clean end of the stream is a loss too; backoff starts again from the first step.
  s.streams[2]!.end();
  await s.clock.advance(50);
  t.is(s.streams.length, 4);
  s.streams[3]!.push(ConnectionEventType.INITIAL_STATE_TRANSFER, [s.asRemote(one.bId), s.asRemote(two.bId)]);
  await flushMicrotasks();
  t.is(s.requests.length, 6, 're-requesting connections the remote still knows is harmless, and done anyway');
});

test('DOWN or DELETE of a connection we hold re-requests it; other connections and UP updates are ignored', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const two = await s.connect1('n2');
  const stream = s.streams[0]!;
  stream.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  stream.push(ConnectionEventType.UPDATE, [s.asRemote(one.bId)]);
  stream.push(ConnectionEventType.UPDATE, [s.asRemote('someone-else', State.DOWN)]);
  await flushMicrotasks();
  t.is(s.requests.length, 2);
  stream.push(ConnectionEventType.UPDATE, [s.asRemote(one.bId, State.DOWN)]);
  await flushMicrotasks();
  t.deepEqual(
    s.requests.slice(2).map((r) => r.id),
    [one.bId],
  );
  stream.push(ConnectionEventType.DELETE, [s.asRemote(two.bId)]);
  await flushMicrotasks();
  t.deepEqual(
    s.requests.slice(2).map((r) => r.id),
    [one.bId, two.bId],
  );
  t.deepEqual(s.kinds(), [`healed:${one.bId}`, `healed:${two.bId}`]);
});

test('a failing re-request retries with backoff and asks for another endpoint after 3 failures in a row', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const stream = s.streams[0]!;
  stream.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  s.remote.fail = true;
  stream.push(ConnectionEventType.UPDATE, [s.asRemote(one.bId, State.DOWN)]);
  await flushMicrotasks();
  t.is(s.requests.length, 2);
  await s.clock.advance(50); // retry 1 after 0.5 × 100
  t.is(s.requests.length, 3);
  await s.clock.advance(100); // retry 2 after 0.5 × 200
  t.is(s.requests.length, 4);
  t.is(s.closes.length, 0);
  s.remote.fail = false;
  await s.clock.advance(200); // third failure in a row: reselect
  t.deepEqual(s.closes, [one.bId], 'reselect closes the old path first');
  const last = s.requests.at(-1)!;
  t.is(last.state, 'RESELECT_REQUESTED');
  t.is(last.endpoint, '', 'and clears the chosen endpoint');
  t.deepEqual(s.kinds(), [
    `heal-failed:${one.bId}`,
    `heal-failed:${one.bId}`,
    `heal-failed:${one.bId}`,
    `healed:${one.bId}`,
  ]);
  await s.clock.advance(10_000);
  t.is(s.requests.length, 5, 'healed: no more retries');
});

test('never two heal re-requests of one connection at once: reasons that arrive meanwhile run once after it', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const stream = s.streams[0]!;
  stream.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  const g = gate();
  s.remote.block = g.wait();
  for (let i = 0; i < 5; i++) stream.push(ConnectionEventType.UPDATE, [s.asRemote(one.bId, State.DOWN)]);
  await flushMicrotasks();
  t.is(s.requests.length, 2);
  s.remote.block = undefined;
  g.open();
  await flushMicrotasks();
  t.is(s.requests.length, 3, 'five DOWN events while one re-request ran: one more after it');
  t.is(s.remote.maxInFlight, 1);
});

test('Close stops healing: no re-request after it, pending retries are cancelled, the stream ends', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const stream = s.streams[0]!;
  stream.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  s.remote.fail = true;
  stream.push(ConnectionEventType.UPDATE, [s.asRemote(one.bId, State.DOWN)]);
  await flushMicrotasks();
  t.is(s.requests.length, 2);
  s.remote.fail = false;
  await s.chain.close(s.ctx, one.conn);
  t.true(stream.cancelled);
  await s.clock.advance(60_000);
  t.is(s.requests.length, 2, 'the scheduled retry did not run');
  t.is(s.streams.length, 1);
  t.is(s.clock.pending, 0, 'no timer left behind');
});

test('a DELETE that races our own Close does not re-request the closed connection', async (t) => {
  const s = setup();
  const one = await s.connect1('n1');
  const stream = s.streams[0]!;
  stream.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  await flushMicrotasks();
  // The remote reports the DELETE while our Close is still on its way back.
  const g = gate();
  s.remote.closeBlock = g.wait();
  const closing = s.chain.close(s.ctx, one.conn);
  stream.push(ConnectionEventType.DELETE, [s.asRemote(one.bId)]);
  await flushMicrotasks();
  g.open();
  await closing;
  await s.clock.advance(10_000);
  t.is(s.requests.length, 1);
  t.deepEqual(s.events, []);
});

test('a remote that comes back gets a bounded number of heal re-requests at once', async (t) => {
  const s = setup({ maxConcurrentHeals: 2 });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await s.connect1(`n${i}`)).bId);
  s.streams[0]!.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  s.streams[0]!.fail();
  await s.clock.advance(50);
  const g = gate();
  s.remote.block = g.wait();
  s.remote.maxInFlight = 0;
  s.streams[1]!.push(ConnectionEventType.INITIAL_STATE_TRANSFER, []);
  await flushMicrotasks();
  t.is(s.requests.length, 5 + 2, 'two at a time');
  s.remote.block = undefined;
  g.open();
  await flushMicrotasks();
  t.deepEqual(
    s.requests
      .slice(5)
      .map((r) => r.id)
      .sort(),
    [...ids].sort(),
    'then the rest, each once',
  );
  t.is(s.remote.maxInFlight, 2);
  t.is(s.events.filter((e) => e.kind === 'healed').length, 5);
});
