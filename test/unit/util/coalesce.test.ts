// Group commit of a state-writing task: calls during a run share the next one, every call is
// covered by a run that started after it, and a failed run fails only the calls it covered.
import test from 'ava';
import { coalescing } from '../../../src/util/index.js';

/** A task whose runs the test finishes by hand; records the state each run saw when it started. */
function manual() {
  const runs: { saw: number; finish: (e?: Error) => void }[] = [];
  let state = 0;
  const sync = coalescing(
    () =>
      new Promise<void>((resolve, reject) => {
        runs.push({ saw: state, finish: (e) => (e ? reject(e) : resolve()) });
      }),
  );
  return { runs, sync, set: (v: number) => (state = v) };
}

const tick = () => new Promise((r) => setImmediate(r));

test('calls while a run is in progress share one run after it, which sees their changes', async (t) => {
  const m = manual();
  m.set(1);
  const first = m.sync();
  await tick();
  t.is(m.runs.length, 1);
  const done: number[] = [];
  const later = [2, 3, 4].map((v) => {
    m.set(v);
    return m.sync().then(() => done.push(v));
  });
  await tick();
  t.is(m.runs.length, 1, 'no second run while the first is in progress');
  m.runs[0]!.finish();
  await first;
  await tick();
  t.is(m.runs.length, 2, 'one run for the three calls that came meanwhile');
  t.is(m.runs[1]!.saw, 4, 'it started after the last change');
  t.deepEqual(done, [], 'they wait for the run that covers them, not the one that was running');
  m.runs[1]!.finish();
  await Promise.all(later);
  t.deepEqual(done, [2, 3, 4]);
});

test('a failed run rejects the calls it covered; the next call runs again', async (t) => {
  const m = manual();
  const a = m.sync();
  const b = m.sync();
  await tick();
  m.runs[0]!.finish(new Error('disk full'));
  await t.throwsAsync(a, { message: 'disk full' });
  await t.throwsAsync(b, { message: 'disk full' });
  const c = m.sync();
  await tick();
  t.is(m.runs.length, 2);
  m.runs[1]!.finish();
  await t.notThrowsAsync(c);
});

test('runs never overlap', async (t) => {
  let active = 0;
  let most = 0;
  const sync = coalescing(async () => {
    active++;
    most = Math.max(most, active);
    await new Promise((r) => setTimeout(r, 2));
    active--;
  });
  const calls: Promise<void>[] = [];
  for (let i = 0; i < 50; i++) {
    calls.push(sync());
    if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(calls);
  t.is(most, 1);
});
