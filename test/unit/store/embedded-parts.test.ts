import test from 'ava';
import { GroupCommit } from '../../../src/store/embedded/group-commit.js';
import { decodeRecord, encodeRecord } from '../../../src/store/embedded/log-record.js';
import type { LogRecord } from '../../../src/store/embedded/log-record.js';
import { frame, scanFrames } from '../../../src/store/embedded/frame.js';

test('group commit: concurrent submissions share flushes, in order; a failed flush fails only its batch', async (t) => {
  const flushed: number[][] = [];
  let fail = false;
  const gc = new GroupCommit<number>(async (items) => {
    await new Promise((r) => setTimeout(r, 5));
    if (fail) throw new Error('disk full');
    flushed.push([...items]);
  });
  await Promise.all(Array.from({ length: 100 }, (_, i) => gc.submit(i)));
  t.deepEqual(
    flushed.flat(),
    Array.from({ length: 100 }, (_, i) => i),
  );
  t.true(flushed.length <= 3, `${flushed.length} flushes for 100 concurrent submissions`);
  fail = true;
  await t.throwsAsync(gc.submit(100), { message: 'disk full' });
  fail = false;
  await gc.submit(101);
  t.deepEqual(flushed.at(-1), [101]);
  await gc.idle();
});

test('log records round-trip for every kind of change', (t) => {
  const records: LogRecord[] = [
    { seq: 1, mutation: { op: 'put', key: '/k/ü😀', value: Uint8Array.of(0, 1, 255), lease: 2 ** 48 - 1 } },
    { seq: 2, mutation: { op: 'put', key: '/empty', value: new Uint8Array(0), lease: 0 } },
    { seq: 3, mutation: { op: 'delete', key: '/k' } },
    { seq: 4, mutation: { op: 'grant', lease: 7, ttlMs: 60_000, expiresAt: 1_800_000_000_000 } },
    { seq: 5, mutation: { op: 'keepalive', lease: 7, expiresAt: 1_800_000_060_000 } },
    { seq: 2 ** 40, mutation: { op: 'revoke', lease: 7 } },
  ];
  for (const r of records) t.deepEqual(decodeRecord(encodeRecord(r)), r);
  t.throws(() => decodeRecord(Buffer.from([9, 0, 0, 0, 0, 0, 1])), { message: /unknown record type/ });
});

test('frame scan stops at a torn or corrupt frame and treats trailing zeros as a clean end', (t) => {
  const a = frame(Buffer.from('first'));
  const b = frame(Buffer.from('second'));
  const clean = Buffer.concat([a, b, Buffer.alloc(64)]);
  const ok = scanFrames(clean, 0, 1024);
  t.deepEqual(
    ok.payloads.map((p) => p.toString()),
    ['first', 'second'],
  );
  t.is(ok.validBytes, a.length + b.length);
  t.is(ok.stop, undefined);

  const torn = scanFrames(Buffer.concat([a, b.subarray(0, b.length - 2)]), 0, 1024);
  t.is(torn.stop, 'torn');
  t.is(torn.validBytes, a.length);

  const flipped = Buffer.concat([a, b]);
  flipped[flipped.length - 1]! ^= 1;
  t.is(scanFrames(flipped, 0, 1024).stop, 'crc');

  const zerosThenData = Buffer.concat([a, Buffer.alloc(16), b]);
  t.is(scanFrames(zerosThenData, 0, 1024).stop, 'crc', 'data after a zero gap is damage, not the end');
  t.is(scanFrames(Buffer.concat([a, b]), 0, 4).stop, 'too-large');
});
