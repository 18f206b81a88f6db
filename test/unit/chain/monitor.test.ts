import test from 'ava';
import {
  ConnectionEventType,
  ConnectionSchema,
  MonitorScopeSelectorSchema,
  PathSchema,
  State,
  create,
} from '../../../src/api/index.js';
import type { Connection, ConnectionEvent } from '../../../src/api/index.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { ConnectionMonitor, matchesSelector, monitorServer } from '../../../src/chain/monitor/index.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { requestWith, testContext } from '../../helpers/chain.js';

type Seg = { name?: string; id?: string; token?: string };

function conn(id: string, segs: Seg[], networkService = 'web'): Connection {
  return create(ConnectionSchema, {
    id,
    networkService,
    path: create(PathSchema, { index: 0, pathSegments: segs }),
  });
}

const sel = (pathSegments: Seg[], networkServices: string[] = []) =>
  create(MonitorScopeSelectorSchema, { pathSegments, networkServices });

test('selector matching follows NSM: contiguous run of segments, empty fields are wildcards, services filter', (t) => {
  const c = conn('a1', [
    { name: 'nsc', id: 'n1', token: 'tn' },
    { name: 'agent-b', id: 'b1', token: 'tb' },
    { name: 'agent-a', id: 'a1', token: 'ta' },
  ]);
  t.true(matchesSelector(c, sel([])), 'empty selector matches everything');
  t.true(matchesSelector(c, undefined));
  t.true(matchesSelector(c, sel([{ name: 'agent-b' }])), 'by name only');
  t.true(matchesSelector(c, sel([{ id: 'b1' }])), 'by id only');
  t.true(matchesSelector(c, sel([{ name: 'agent-b', id: 'b1' }])));
  t.false(matchesSelector(c, sel([{ name: 'agent-b', id: 'b2' }])), 'both must match');
  t.true(matchesSelector(c, sel([{ name: 'agent-b' }, { name: 'agent-a' }])), 'contiguous run');
  t.false(matchesSelector(c, sel([{ name: 'nsc' }, { name: 'agent-a' }])), 'not contiguous');
  t.false(matchesSelector(c, sel([{ name: 'agent-a' }, { name: 'agent-b' }])), 'order matters');
  t.true(matchesSelector(c, sel([{}, {}, {}])), 'all-wildcard run as long as the path');
  t.false(matchesSelector(c, sel([{}, {}, {}, {}])), 'a selector longer than the path never matches');
  t.true(matchesSelector(c, sel([{ token: 'ta' }])), 'token is compared too');
  t.false(matchesSelector(c, sel([{ name: 'agent-a', token: 'tb' }])));
  t.true(matchesSelector(c, sel([], ['web', 'db'])), 'services only');
  t.false(matchesSelector(c, sel([], ['db'])));
  t.false(matchesSelector(c, sel([{ name: 'agent-b' }], ['db'])), 'service and path must both match');
  t.true(matchesSelector(c, sel([{ name: 'agent-b' }], ['web'])));
  t.false(matchesSelector(conn('x', []), sel([{ name: 'agent-b' }])), 'no path, segment selector: no match');
});

/** Reads events from a subscription one at a time. */
function reader(events: AsyncIterable<ConnectionEvent>) {
  const it = events[Symbol.asyncIterator]();
  return {
    next: async (): Promise<ConnectionEvent> => {
      const r = await it.next();
      if (r.done) throw new Error('stream ended');
      return r.value;
    },
    done: async (): Promise<boolean> => (await it.next()).done === true,
    raw: it,
  };
}

const summary = (e: ConnectionEvent) => ({
  type: ConnectionEventType[e.type],
  ids: Object.keys(e.connections).sort(),
  states: Object.values(e.connections).map((c) => State[c.state]),
});

/** A local endpoint for the server chain: closes may be made to fail. */
function endpoint(opts: { failClose?: boolean } = {}): ChainElement {
  return {
    name: 'endpoint',
    request: (_ctx, r) => Promise.resolve(r.connection!),
    close: () => (opts.failClose ? Promise.reject(new Error('data plane gone')) : Promise.resolve()),
  };
}

test('monitor server: INITIAL with matching connections, UPDATE after Request, DELETE after Close (even a failed one)', async (t) => {
  const monitor = new ConnectionMonitor();
  const ep = { failClose: false };
  const chain = buildChain('agent-a', [
    updatePathServer('agent-a'),
    beginServer(),
    monitorServer(monitor),
    endpoint(ep),
  ]);
  const ctx = testContext();
  const r1 = await chain.request(ctx, requestWith([{ name: 'agent-b', id: 'b1' }], 0, 'b1'));
  await chain.request(ctx, requestWith([{ name: 'agent-c', id: 'c1' }], 0, 'c1'));
  t.is(monitor.size, 2);
  const ids = monitor.list().map((c) => c.id);
  t.is(ids.length, 2);
  // Events are keyed by this hop's id, and carry the connection as this hop returned it (index 1).
  const aId = r1.path!.pathSegments[1]!.id;
  t.true(ids.includes(aId));
  t.is(monitor.get(aId)?.path?.index, 1);

  const sub = reader(monitor.subscribe(sel([{ name: 'agent-b' }])));
  t.deepEqual(summary(await sub.next()), { type: 'INITIAL_STATE_TRANSFER', ids: [aId], states: ['UP'] });

  // A refresh of b's connection: UPDATE; c's connections are not b's business.
  await chain.request(ctx, requestWith([{ name: 'agent-c', id: 'c2' }], 0, 'c2'));
  await chain.request(
    ctx,
    requestWith(
      [
        { name: 'agent-b', id: 'b1' },
        { name: 'agent-a', id: aId },
      ],
      0,
      'b1',
    ),
  );
  t.deepEqual(summary(await sub.next()), { type: 'UPDATE', ids: [aId], states: ['UP'] });

  t.true(monitor.markDown(aId));
  t.false(monitor.markDown('nope'));
  t.deepEqual(summary(await sub.next()), { type: 'UPDATE', ids: [aId], states: ['DOWN'] });

  ep.failClose = true;
  await t.throwsAsync(chain.close(ctx, r1), { message: /data plane gone/ });
  t.deepEqual(summary(await sub.next()), { type: 'DELETE', ids: [aId], states: ['DOWN'] });
  t.is(monitor.size, 2, 'c1 and c2 remain');
  t.false(monitor.list().some((c) => c.id === aId));
});

test('an empty monitor sends an empty INITIAL_STATE_TRANSFER; abort and close end streams', async (t) => {
  const monitor = new ConnectionMonitor();
  const ac = new AbortController();
  const a = reader(monitor.subscribe(sel([]), ac.signal));
  const b = reader(monitor.subscribe(sel([])));
  t.deepEqual(summary(await a.next()), { type: 'INITIAL_STATE_TRANSFER', ids: [], states: [] });
  t.deepEqual(summary(await b.next()), { type: 'INITIAL_STATE_TRANSFER', ids: [], states: [] });
  t.is(monitor.subscriberCount, 2);
  const aDone = a.done();
  ac.abort();
  t.true(await aDone, 'a waiting reader ends when its signal aborts');
  monitor.update(conn('x1', [{ name: 'n', id: 'x1' }]));
  t.deepEqual(summary(await b.next()), { type: 'UPDATE', ids: ['x1'], states: ['UP'] });
  monitor.close();
  t.true(await b.done());
  t.is(monitor.subscriberCount, 0);
  const late = reader(monitor.subscribe(sel([])));
  t.is(
    (await late.next()).type,
    ConnectionEventType.INITIAL_STATE_TRANSFER,
    'a closed monitor still answers the state',
  );
  t.true(await late.done(), 'and ends at once');
});

test('a subscriber that stops reading is cut off with RESOURCE_EXHAUSTED instead of growing a backlog', async (t) => {
  const monitor = new ConnectionMonitor({ maxBacklog: 3 });
  const slow = reader(monitor.subscribe(sel([])));
  const fast = reader(monitor.subscribe(sel([])));
  await fast.next();
  for (let i = 0; i < 10; i++) {
    monitor.update(conn(`c${i}`, [{ name: 'n', id: `c${i}` }]));
    await fast.next(); // the fast one keeps up
  }
  t.is(monitor.subscriberCount, 1, 'the slow subscriber is dropped at once');
  const err = await t.throwsAsync(slow.next());
  t.true(AgentError.is(err, 'RESOURCE_EXHAUSTED'));
  t.regex(err.message, /subscribe again/);
  monitor.update(conn('late', [{ name: 'n', id: 'late' }]));
  t.deepEqual(summary(await fast.next()).ids, ['late']);
});

test('breaking out of a subscription unregisters it', async (t) => {
  const monitor = new ConnectionMonitor();
  monitor.update(conn('c1', [{ name: 'n', id: 'c1' }]));
  for await (const e of monitor.subscribe(sel([]))) {
    t.is(e.type, ConnectionEventType.INITIAL_STATE_TRANSFER);
    break;
  }
  t.is(monitor.subscriberCount, 0);
});

test('updates a subscriber has not read yet go out as one event; kinds keep their order; other subscribers see theirs unchanged', async (t) => {
  const monitor = new ConnectionMonitor();
  monitor.update(conn('old', [{ name: 'n', id: 'old' }]));
  const behind = reader(monitor.subscribe(sel([])));
  const other = reader(monitor.subscribe(sel([])));
  t.deepEqual(summary(await behind.next()).ids, ['old'], 'the state first');
  t.is((await other.next()).type, ConnectionEventType.INITIAL_STATE_TRANSFER);
  // A burst while neither reads: c1, c2, a newer c1, then old goes, then c3.
  monitor.update(conn('c1', [{ name: 'n', id: 'c1' }], 'first'));
  const otherFirst = await other.next(); // the other reads the first at once
  monitor.update(conn('c2', [{ name: 'n', id: 'c2' }]));
  monitor.update(conn('c1', [{ name: 'n', id: 'c1' }], 'second'));
  monitor.delete('old');
  monitor.update(conn('c3', [{ name: 'n', id: 'c3' }]));

  const u = await behind.next();
  t.is(u.type, ConnectionEventType.UPDATE);
  t.deepEqual(Object.keys(u.connections).sort(), ['c1', 'c2']);
  t.is(u.connections['c1']?.networkService, 'second', 'the latest state of c1');
  const d = await behind.next();
  t.is(d.type, ConnectionEventType.DELETE, 'the delete after those updates, not merged into them');
  t.deepEqual(Object.keys(d.connections), ['old']);
  t.deepEqual(Object.keys((await behind.next()).connections), ['c3']);

  t.deepEqual(Object.keys(otherFirst.connections), ['c1'], 'what the other read is not changed later');
  t.is(otherFirst.connections['c1']?.networkService, 'first');
  const o = await other.next();
  t.deepEqual(Object.keys(o.connections).sort(), ['c1', 'c2']);
});
