import test from 'ava';
import { PathSegmentSchema, create, toTimestamp } from '../../../src/api/index.js';
import type { Connection } from '../../../src/api/index.js';
import { beginClient } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { refreshClient, refreshPlan } from '../../../src/chain/refresh/index.js';
import { updatePathClient } from '../../../src/chain/updatepath/index.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { requestWith, testContext } from '../../helpers/chain.js';

/**
 * A server stand-in: every Request sets our segment's expiry to now + `ownMs` and, if `serverMs` is
 * given, appends/refreshes a server segment expiring at now + `serverMs`. `fail` decides failures.
 */
function server(clock: FakeClock, ownMs: number, serverMs: number | undefined, fail: (n: number) => boolean) {
  const start = clock.now();
  const at: number[] = [];
  const closes: number[] = [];
  const element: ChainElement = {
    name: 'connect',
    request(_ctx, r) {
      at.push(clock.now() - start);
      if (fail(at.length)) return Promise.reject(new Error('server unavailable'));
      const conn = r.connection!;
      const segs = conn.path!.pathSegments;
      segs[0]!.expires = toTimestamp(clock.now() + ownMs);
      if (serverMs !== undefined) {
        if (segs.length < 2) segs.push(create(PathSegmentSchema, { name: 'nsmgr', id: 'm1' }));
        segs[1]!.expires = toTimestamp(clock.now() + serverMs);
      }
      return Promise.resolve(conn);
    },
    close() {
      closes.push(clock.now() - start);
      return Promise.resolve();
    },
  };
  const chain = buildChain('nsc', [updatePathClient('nsc'), beginClient(), refreshClient(), element]);
  return { chain, at, closes };
}

test('refresh at 20 % of the shortest remaining lifetime for a client at index 0 of two segments', async (t) => {
  const clock = new FakeClock(Date.now());
  const { chain, at } = server(clock, 10 * 60_000, 5 * 60_000, () => false);
  await chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  await clock.advance(60_000 - 1);
  t.deepEqual(at, [0]);
  await clock.advance(1);
  t.deepEqual(at, [0, 60_000], 'min(10 min, 5 min) × 0.2 = 1 min');
  await clock.advance(60_000);
  t.deepEqual(at, [0, 60_000, 120_000], 'and again from each refresh');
});

test('a one-segment path refreshes at a third of its lifetime', async (t) => {
  const clock = new FakeClock(Date.now());
  const { chain, at } = server(clock, 9 * 60_000, undefined, () => false);
  await chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  await clock.advance(3 * 60_000);
  t.deepEqual(at, [0, 3 * 60_000]);
});

test('a failed refresh is retried every 200 ms, and no longer than the tokens last', async (t) => {
  const clock = new FakeClock(Date.now());
  // Lifetime 10 s → refresh at 2 s; the 2nd and 3rd calls fail, the 4th succeeds.
  const flaky = server(clock, 10_000, 10_000, (n) => n === 2 || n === 3);
  await flaky.chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  await clock.advance(2_400);
  t.deepEqual(flaky.at, [0, 2_000, 2_200, 2_400]);
  await clock.advance(2_000);
  t.deepEqual(flaky.at, [0, 2_000, 2_200, 2_400, 4_400], 'back on schedule: 2.4 s + 20 % of 10 s');

  const clock2 = new FakeClock(Date.now());
  const down = server(clock2, 10_000, 10_000, (n) => n > 1);
  await down.chain.request(testContext({ clock: clock2 }), requestWith([], 0, 'c1'));
  await clock2.advance(60_000);
  const retries = down.at.slice(2);
  t.true(
    retries.every((ms, i) => ms - (down.at[i + 1] ?? 0) === 200),
    'every 200 ms',
  );
  t.is(down.at.at(-1), 9_800, 'the last try is while the tokens are still valid');
  t.is(clock2.pending, 0, 'then it stops');
});

test('Close stops refreshing', async (t) => {
  const clock = new FakeClock(Date.now());
  const { chain, at, closes } = server(clock, 10 * 60_000, 5 * 60_000, () => false);
  const conn: Connection = await chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  await clock.advance(60_000);
  await chain.close(testContext({ clock }), conn);
  t.is(clock.pending, 0);
  await clock.advance(60 * 60_000);
  t.deepEqual(at, [0, 60_000]);
  t.deepEqual(closes, [60_000]);
});

test('refreshPlan: scale by position in the path, none without expiries', (t) => {
  const now = Date.UTC(2026, 0, 1);
  const conn = (index: number, lifetimes: (number | undefined)[]): Connection => {
    const c = requestWith(
      lifetimes.map((_, i) => ({ name: `h${i}`, id: `${i}` })),
      index,
      String(index),
    ).connection!;
    lifetimes.forEach((ms, i) => {
      if (ms !== undefined) c.path!.pathSegments[i]!.expires = toTimestamp(now + ms);
    });
    return c;
  };
  t.deepEqual(refreshPlan(conn(0, [1_000, 2_000]), now), { expiresAtMs: now + 1_000, delayMs: 200 });
  t.deepEqual(refreshPlan(conn(2, [10_000, 10_000, 10_000, 10_000]), now), {
    expiresAtMs: now + 10_000,
    delayMs: 3_000,
  });
  t.deepEqual(refreshPlan(conn(0, [3_000]), now), { expiresAtMs: now + 3_000, delayMs: 1_000 });
  t.is(refreshPlan(conn(0, [undefined, undefined]), now), undefined);
});
