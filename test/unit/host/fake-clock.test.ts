import test from 'ava';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { systemClock } from '../../../src/host/clock.js';

test('timers fire in due order only when the clock is advanced', async (t) => {
  const clock = new FakeClock(1_000);
  const fired: string[] = [];
  clock.setTimer(300, () => fired.push('c'));
  clock.setTimer(100, () => fired.push('a'));
  clock.setTimer(100, () => fired.push('b'));
  const cancelled = clock.setTimer(200, () => fired.push('x'));
  cancelled.cancel();
  await clock.advance(99);
  t.deepEqual(fired, []);
  await clock.advance(1);
  t.deepEqual(fired, ['a', 'b']);
  t.is(clock.now(), 1_100);
  await clock.advance(1_000);
  t.deepEqual(fired, ['a', 'b', 'c']);
  t.is(clock.pending, 0);
});

test('a timer set by a firing timer fires in the same advance when due, at its own time', async (t) => {
  const clock = new FakeClock(0);
  const at: number[] = [];
  clock.setTimer(10, () => {
    at.push(clock.now());
    clock.setTimer(10, () => at.push(clock.now()));
  });
  await clock.advance(25);
  t.deepEqual(at, [10, 20]);
});

test('sleep resolves on advance and rejects when its signal aborts', async (t) => {
  const clock = new FakeClock(0);
  let woke = false;
  const p = clock.sleep(50).then(() => (woke = true));
  await clock.advance(49);
  t.false(woke);
  await clock.advance(1);
  await p;
  t.true(woke);
  const ac = new AbortController();
  const q = clock.sleep(1_000, ac.signal);
  ac.abort(new Error('stop'));
  await t.throwsAsync(q, { message: 'stop' });
  t.is(clock.pending, 0);
});

test('the system clock sleeps for real and honours abort', async (t) => {
  const start = Date.now();
  await systemClock.sleep(20);
  t.true(Date.now() - start >= 15);
  await t.throwsAsync(systemClock.sleep(10_000, AbortSignal.abort(new Error('gone'))), { message: 'gone' });
});
