import { create, protoInt64 } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { AgentError } from '../errors/index.js';

/**
 * Conversions between the agent's clock (milliseconds since the epoch, what Clock.now() returns)
 * and google.protobuf.Timestamp, the type of PathSegment.expires and the registry times.
 * Timestamps from peers drive refresh and expiry timers, so out-of-range values are rejected
 * here rather than becoming NaN or a timer set for year 275760.
 */

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range google.protobuf.Timestamp allows. */
export const TIMESTAMP_MIN_SECONDS = -62_135_596_800;
export const TIMESTAMP_MAX_SECONDS = 253_402_300_799;

/** A Timestamp for `ms` milliseconds since the epoch; sub-millisecond fractions are dropped. */
export function toTimestamp(ms: number): Timestamp {
  if (!Number.isFinite(ms)) {
    throw new AgentError('INVALID_ARGUMENT', `cannot make a timestamp from ${ms}`, {
      hint: 'pass milliseconds since the epoch, e.g. clock.now() + lifetimeMs',
    });
  }
  const whole = Math.floor(ms);
  // floor, not truncation, so nanos stay in 0..999_999_999 for times before 1970 as the type requires.
  const seconds = Math.floor(whole / 1000);
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) {
    throw new AgentError('INVALID_ARGUMENT', `timestamp ${ms} ms is outside years 1..9999`);
  }
  return create(TimestampSchema, {
    seconds: protoInt64.parse(seconds),
    nanos: (whole - seconds * 1000) * 1e6,
  });
}

/** Milliseconds since the epoch for `ts`, rounded down to whole milliseconds. */
export function timestampToMs(ts: Timestamp): number {
  const seconds = Number(ts.seconds);
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) {
    throw new AgentError('INVALID_ARGUMENT', `timestamp seconds ${ts.seconds} is outside years 1..9999`, {
      hint: 'the peer sent a malformed google.protobuf.Timestamp',
    });
  }
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw new AgentError('INVALID_ARGUMENT', `timestamp nanos ${ts.nanos} is outside 0..999999999`, {
      hint: 'the peer sent a malformed google.protobuf.Timestamp',
    });
  }
  return seconds * 1000 + Math.floor(ts.nanos / 1e6);
}
