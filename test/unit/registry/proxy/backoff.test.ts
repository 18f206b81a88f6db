import test from 'ava';
import { SequenceRandom } from '../../../../src/host/fake/index.js';
import { DEFAULT_BACKOFF, fullJitterDelay } from '../../../../src/registry/index.js';

test('full jitter: the delay is a uniform share of a ceiling that doubles from 1 s up to 30 s', (t) => {
  const r = (f: number): SequenceRandom => new SequenceRandom('x', [f]);
  t.is(fullJitterDelay(0, r(0.5)), 500);
  t.is(fullJitterDelay(1, r(0.5)), 1_000);
  t.is(fullJitterDelay(4, r(0.5)), 8_000);
  t.is(fullJitterDelay(5, r(0.5)), 15_000, 'ceiling 32 s is capped at 30 s');
  t.is(fullJitterDelay(1_000, r(0.999)), 29_970, 'a huge attempt count neither overflows nor passes the cap');
  t.is(fullJitterDelay(3, r(0)), 0);
  t.deepEqual(DEFAULT_BACKOFF, { initialMs: 1_000, maxMs: 30_000 });
});

test('agents that lost upstream together retry spread over the window, not at one instant', (t) => {
  // Ten agents, each with its own randomness, all at their first retry.
  const delays = Array.from({ length: 10 }, (_, i) =>
    fullJitterDelay(0, new SequenceRandom('a', [(i + 0.5) / 10]), { initialMs: 1_000, maxMs: 30_000 }),
  );
  t.is(new Set(delays).size, 10);
  t.true(Math.min(...delays) < 100 && Math.max(...delays) > 900, delays.join(','));
});
