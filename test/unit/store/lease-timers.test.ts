import test from 'ava';
import { FakeClock } from '../../../src/host/fake/index.js';
import { LeaseTimers } from '../../../src/store/lease-timers.js';

test('each armed lease expires once, at its latest expiry; disarmed ones never; one timer in all', async (t) => {
  const start = 1_000_000;
  const clock = new FakeClock(start);
  const fired: { id: number; at: number }[] = [];
  const timers = new LeaseTimers(clock, (id) => fired.push({ id, at: clock.now() }));
  // A small deterministic generator, so a failure can be replayed.
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  const want = new Map<number, number>();
  for (let id = 1; id <= 2_000; id++) {
    const at = start + 1 + rand(60_000);
    timers.arm(id, at);
    want.set(id, at);
  }
  // Keep-alives move some later, some earlier; others are disarmed.
  for (let k = 0; k < 3_000; k++) {
    const id = 1 + rand(2_000);
    if (!want.has(id)) continue;
    if (rand(4) === 0) {
      timers.disarm(id);
      want.delete(id);
    } else {
      const at = start + 1 + rand(60_000);
      timers.arm(id, at);
      want.set(id, at);
    }
  }
  t.is(clock.pending, 1, 'one timer for every lease');
  await clock.advance(30_000);
  // A lease armed from inside the run, due before the others still pending.
  timers.arm(9_999, clock.now() + 1);
  want.set(9_999, clock.now() + 1);
  await clock.advance(40_000);

  t.is(fired.length, want.size);
  const byId = (a: number, b: number): number => a - b;
  t.deepEqual(fired.map((f) => f.id).sort(byId), [...want.keys()].sort(byId));
  for (const f of fired) t.is(f.at, want.get(f.id) ?? -1, `lease ${f.id} expired at its time`);
  t.is(clock.pending, 0, 'no timer is left once every lease expired');
});

test('a lease re-armed from its own expiry callback expires again; clear stops everything', async (t) => {
  const clock = new FakeClock(0);
  let calls = 0;
  const timers: LeaseTimers = new LeaseTimers(clock, (id) => {
    calls++;
    if (calls < 3) timers.arm(id, clock.now() + 100);
  });
  timers.arm(7, 100);
  await clock.advance(1_000);
  t.is(calls, 3);
  timers.arm(8, 2_000);
  timers.clear();
  await clock.advance(5_000);
  t.is(calls, 3);
  t.is(clock.pending, 0);
});
