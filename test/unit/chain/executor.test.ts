// SerialExecutor (src/chain/core/executor.ts): begin's per-connection queue runs tasks one at a
// time in submission order, a failure does not stop the rest, and it is reusable once idle.
import test from 'ava';
import { SerialExecutor } from '../../../src/chain/core/executor.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('tasks run one at a time, in order; a failing one does not stop those after it', async (t) => {
  const ex = new SerialExecutor();
  const log: string[] = [];
  const task =
    (name: string, fail = false) =>
    async (): Promise<string> => {
      log.push(`${name} start`);
      await tick();
      log.push(`${name} end`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
  const a = ex.run(task('a'));
  const b = ex.run(task('b', true));
  const c = ex.run(task('c'));
  t.is(ex.queued, 3);
  t.is(await a, 'a');
  await t.throwsAsync(b, { message: 'b failed' });
  t.is(await c, 'c');
  t.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  await tick();
  t.is(ex.queued, 0);
  // Idle, then used again: still in order.
  const d = ex.run(task('d'));
  const e = ex.run(task('e'));
  t.deepEqual(await Promise.all([d, e]), ['d', 'e']);
  t.deepEqual(log.slice(-4), ['d start', 'd end', 'e start', 'e end']);
});
