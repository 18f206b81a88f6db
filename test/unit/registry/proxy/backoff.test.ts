import test from 'ava';
import { SequenceRandom } from '../../../../src/host/fake/index.js';
import { DEFAULT_BACKOFF, fullJitterDelay } from '../../../../src/registry/index.js';

test('full jitter: the delay is a uniform share of a ceiling that doubles from 1 s up to 10 s', (t) => {
  const r = (f: number): SequenceRandom => new SequenceRandom('x', [f]);
  t.is(fullJitterDelay(0, r(0.5)), 500);
  t.is(fullJitterDelay(1, r(0.5)), 1_000);
  t.is(fullJitterDelay(3, r(0.5)), 4_000);
  t.is(fullJitterDelay(4, r(0.5)), 5_000, 'ceiling 16 s is capped at 10 s');
  t.is(fullJitterDelay(1_000, r(0.999)), 9_990, 'a huge attempt count neither overflows nor passes the cap');
  t.is(fullJitterDelay(3, r(0)), 0);
  // The cap is what bounds "registrations back after upstream returns" (R19: well inside 40 s).
  t.deepEqual(DEFAULT_BACKOFF, { initialMs: 1_000, maxMs: 10_000 });
  t.is(fullJitterDelay(5, r(0.5), { initialMs: 1_000, maxMs: 30_000 }), 15_000, 'another cap is honoured');
});

test('agents that lost upstream together retry spread over the window, not at one instant', (t) => {
  // Ten agents, each with its own randomness, all at their first retry.
  const delays = Array.from({ length: 10 }, (_, i) =>
    fullJitterDelay(0, new SequenceRandom('a', [(i + 0.5) / 10]), { initialMs: 1_000, maxMs: 30_000 }),
  );
  t.is(new Set(delays).size, 10);
  t.true(Math.min(...delays) < 100 && Math.max(...delays) > 900, delays.join(','));
});
