import test from 'ava';
import { Metadata } from '@grpc/grpc-js';
import {
  CLIENT_TOKEN_EXPIRES_KEY,
  CLIENT_TOKEN_KEY,
  formatRfc3339Nano,
  parseRfc3339Nano,
  readClientToken,
  writeClientToken,
} from '../../../src/api/token/index.js';
import { AgentError } from '../../../src/errors/index.js';

test('RFC3339Nano parses Go’s forms: nanoseconds, no fraction, Z and ±hh:mm offsets', (t) => {
  const base = Date.UTC(2026, 0, 2, 15, 4, 5);
  t.is(parseRfc3339Nano('2026-01-02T15:04:05.123456789Z'), base + 123);
  t.is(parseRfc3339Nano('2026-01-02T15:04:05Z'), base);
  t.is(parseRfc3339Nano('2026-01-02T15:04:05.1Z'), base + 100);
  t.is(parseRfc3339Nano('2026-01-02T17:04:05.5+02:00'), base + 500);
  t.is(parseRfc3339Nano('2026-01-02T10:34:05-04:30'), base);
  t.is(parseRfc3339Nano('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
});

test('RFC3339Nano formats like Go: trailing zeros trimmed, no fraction for whole seconds, Z', (t) => {
  const base = Date.UTC(2026, 0, 2, 15, 4, 5);
  t.is(formatRfc3339Nano(base + 123), '2026-01-02T15:04:05.123Z');
  t.is(formatRfc3339Nano(base + 120), '2026-01-02T15:04:05.12Z');
  t.is(formatRfc3339Nano(base), '2026-01-02T15:04:05Z');
  t.is(parseRfc3339Nano(formatRfc3339Nano(base + 7)), base + 7);
});

test('RFC3339Nano refuses what Go’s parser refuses, saying which part', (t) => {
  for (const [text, why] of [
    ['2026-01-02 15:04:05Z', 'expected YYYY'],
    ['2026-01-02T15:04:05', 'expected YYYY'],
    ['2026-13-02T15:04:05Z', 'month'],
    ['2026-02-30T15:04:05Z', 'day'],
    ['2026-01-02T24:04:05Z', 'hour'],
    ['2026-01-02T15:04:60Z', 'second'],
    ['2026-01-02T15:04:05.1234567890Z', 'expected YYYY'],
    ['2026-01-02T15:04:05+24:00', 'offset'],
  ] as const) {
    const e = t.throws(() => parseRfc3339Nano(text), { instanceOf: AgentError }, text);
    t.is(e.code, 'INVALID_ARGUMENT');
    t.true(e.message.includes(why), e.message);
  }
});

test('token metadata round-trips through grpc-js Metadata with the upstream keys', (t) => {
  t.is(CLIENT_TOKEN_KEY, 'nsm-client-token');
  t.is(CLIENT_TOKEN_EXPIRES_KEY, 'nsm-client-token-expires');
  const md = new Metadata();
  const expiresAtMs = Date.UTC(2026, 5, 1, 12, 0, 0, 250);
  writeClientToken(md, { token: 'a.b.c', expiresAtMs });
  t.is(md.get(CLIENT_TOKEN_EXPIRES_KEY)[0], '2026-06-01T12:00:00.25Z');
  t.deepEqual(readClientToken(md), { kind: 'present', value: { token: 'a.b.c', expiresAtMs } });
});

test('missing, duplicated or unparsable token metadata is reported without the token', (t) => {
  t.deepEqual(readClientToken(new Metadata()), { kind: 'missing' });
  const twice = new Metadata();
  twice.add(CLIENT_TOKEN_KEY, 'secret.token.one');
  twice.add(CLIENT_TOKEN_KEY, 'secret.token.two');
  twice.set(CLIENT_TOKEN_EXPIRES_KEY, '2026-01-02T15:04:05Z');
  const r1 = readClientToken(twice);
  t.is(r1.kind, 'invalid');
  if (r1.kind === 'invalid') {
    t.regex(r1.reason, /nsm-client-token has 2 values/);
    t.false(r1.reason.includes('secret'));
  }
  const noExpiry = new Metadata();
  noExpiry.set(CLIENT_TOKEN_KEY, 'secret.token.x');
  const r2 = readClientToken(noExpiry);
  t.is(r2.kind, 'invalid');
  if (r2.kind === 'invalid') t.regex(r2.reason, /nsm-client-token-expires has 0 values/);
  const badExpiry = new Metadata();
  badExpiry.set(CLIENT_TOKEN_KEY, 'secret.token.x');
  badExpiry.set(CLIENT_TOKEN_EXPIRES_KEY, 'tomorrow');
  const r3 = readClientToken(badExpiry);
  t.is(r3.kind, 'invalid');
  if (r3.kind === 'invalid')
    t.regex(r3.reason, /nsm-client-token-expires: "tomorrow" is not an RFC 3339 time/);
});
