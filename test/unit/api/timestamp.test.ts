import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { create, TimestampSchema, timestampToMs, toTimestamp } from '../../../src/api/index.js';

test('toTimestamp splits milliseconds into seconds and nanos', (t) => {
  const ts = toTimestamp(1_767_225_600_123);
  t.is(ts.seconds, 1_767_225_600n);
  t.is(ts.nanos, 123_000_000);
  t.is(ts.$typeName, 'google.protobuf.Timestamp');
});

test('toTimestamp keeps nanos non-negative before 1970', (t) => {
  const ts = toTimestamp(-1);
  t.is(ts.seconds, -1n);
  t.is(ts.nanos, 999_000_000);
  t.is(timestampToMs(ts), -1);
});

test('toTimestamp drops sub-millisecond fractions', (t) => {
  t.is(toTimestamp(1500.9).nanos, 500_000_000);
});

test('ms → Timestamp → ms round-trips', (t) => {
  for (const ms of [0, 1, 999, 1000, 1_767_225_600_999, 253_402_300_799_999, -62_135_596_800_000]) {
    t.is(timestampToMs(toTimestamp(ms)), ms, String(ms));
  }
});

test('timestampToMs rounds nanos down to whole milliseconds', (t) => {
  t.is(timestampToMs(create(TimestampSchema, { seconds: 10n, nanos: 999_999_999 })), 10_999);
});

test('toTimestamp rejects non-finite and out-of-range times', (t) => {
  for (const ms of [Number.NaN, Infinity, -Infinity, 253_402_300_800_000, -62_135_596_800_001]) {
    const e = t.throws(() => toTimestamp(ms), { instanceOf: AgentError }, String(ms));
    t.is(e.code, 'INVALID_ARGUMENT');
  }
});

test('timestampToMs rejects malformed Timestamps from peers', (t) => {
  const bad = [
    create(TimestampSchema, { seconds: 253_402_300_800n }),
    create(TimestampSchema, { seconds: -62_135_596_801n }),
    create(TimestampSchema, { seconds: 1n, nanos: -1 }),
    create(TimestampSchema, { seconds: 1n, nanos: 1_000_000_000 }),
  ];
  for (const ts of bad) {
    t.throws(() => timestampToMs(ts), { instanceOf: AgentError, message: /timestamp/ });
  }
});
