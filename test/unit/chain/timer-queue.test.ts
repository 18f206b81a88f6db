// TimerQueue (src/chain/core/timer-queue.ts): refresh and timeout keep every connection's deadline
// on one clock timer; each deadline must still fire when it is due, once, in order.
import test from 'ava';
import { TimerQueue } from '../../../src/chain/core/timer-queue.js';
import { FakeClock } from '../../../src/host/fake/clock.js';

test('entries fire when due, in due order (ties in the order set), on one clock timer', async (t) => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  const q = new TimerQueue<{ n: number }>((key, v) => fired.push(`${key}@${clock.now()}:${v.n}`));
  q.set(clock, 'c', 300, { n: 3 });
  q.set(clock, 'a', 100, { n: 1 });
  q.set(clock, 'b', 100, { n: 2 });
  t.is(clock.pending, 1, 'one clock timer for three entries');
  await clock.advance(99);
  t.deepEqual(fired, []);
  await clock.advance(1);
  t.deepEqual(fired, ['a@100:1', 'b@100:2']);
  await clock.advance(500);
  t.deepEqual(fired, ['a@100:1', 'b@100:2', 'c@300:3']);
  t.is(q.size, 0);
  t.is(clock.pending, 0, 'no timer once nothing is left');
});

test('setting a key again replaces its entry; delete drops it; the last delete cancels the clock timer', async (t) => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  const q = new TimerQueue<{ n: number }>((key, v) => fired.push(`${key}@${clock.now()}:${v.n}`));
  q.set(clock, 'a', 100, { n: 1 });
  q.set(clock, 'a', 50, { n: 2 });
  q.set(clock, 'b', 70, { n: 3 });
  q.delete('b');
  q.delete('nope');
  await clock.advance(200);
  t.deepEqual(fired, ['a@50:2']);
  q.set(clock, 'x', 10, { n: 4 });
  q.delete('x');
  t.is(clock.pending, 0);
  await clock.advance(100);
  t.is(fired.length, 1);
});

test('a handler may set entries again (a retry), and one that throws does not stop the others', async (t) => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  const q: TimerQueue<{ tries: number }> = new TimerQueue<{ tries: number }>((key, v) => {
    fired.push(`${key}@${clock.now()}`);
    if (key === 'retry' && v.tries < 3) q.set(clock, key, 200, { tries: v.tries + 1 });
    if (key === 'bad') throw new Error('handler failed');
  });
  q.set(clock, 'retry', 100, { tries: 1 });
  q.set(clock, 'bad', 100, { tries: 1 });
  q.set(clock, 'after', 100, { tries: 1 });
  // A timer callback that throws is an uncaught error in the real clock; the fake one rethrows it.
  await t.throwsAsync(clock.advance(100), { message: 'handler failed' });
  await clock.advance(1_000);
  t.deepEqual(fired, ['retry@100', 'bad@100', 'after@100', 'retry@300', 'retry@500']);
  t.is(clock.pending, 0);
});

test('a thousand entries set, moved and deleted at random fire exactly as separate timers would', async (t) => {
  const clock = new FakeClock(0);
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const fired: string[] = [];
  const q = new TimerQueue<{ at: number }>((key, v) => {
    t.is(clock.now(), v.at, `${key} fires when due`);
    fired.push(key);
  });
  const expected = new Map<string, number>();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 1_000; i++) {
      const key = `k${rnd(300)}`;
      if (rnd(4) === 0) {
        q.delete(key);
        expected.delete(key);
      } else {
        const delay = rnd(10_000);
        q.set(clock, key, delay, { at: clock.now() + delay });
        expected.set(key, clock.now() + delay);
      }
    }
    const step = rnd(5_000);
    const until = clock.now() + step;
    const due = [...expected].filter(([, at]) => at <= until).map(([k]) => k);
    fired.length = 0;
    await clock.advance(step);
    t.deepEqual(new Set(fired), new Set(due));
    t.is(fired.length, due.length, 'each once');
    for (const k of due) expected.delete(k);
    t.is(q.size, expected.size);
  }
});
