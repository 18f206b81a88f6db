import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { FakeClock } from '../../../src/host/fake/index.js';
import { EmbeddedStore } from '../../../src/store/index.js';
import type { WatchEvent } from '../../../src/store/index.js';
import { capturingLogger } from '../../helpers/chain.js';
import { scanFrames } from '../../../src/store/embedded/frame.js';

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'nsm-embedded-'));
  dirs.push(d);
  return d;
}
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('log-'))
    .sort();
}

test('everything acknowledged is there after reopening, with the same revisions', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir });
  await a.put('/k/1', bytes('one'));
  const r2 = await a.put('/k/2', bytes('two'));
  await a.put('/k/2', bytes('two again'), { ifModRevision: r2.revision });
  await a.put('/k/3', bytes('three'));
  await a.delete('/k/3');
  const before = await a.list('/');
  await a.close();

  const b = await EmbeddedStore.open({ dir });
  const after = await b.list('/');
  t.deepEqual(after, before);
  t.is(text((await b.get('/k/2'))!.value), 'two again');
  const next = await b.put('/k/4', bytes('four'));
  t.is(next.revision, before.revision + 1, 'revisions continue where they stopped');
  await b.close();
});

test('compaction writes a snapshot, removes old logs, and the state replays exactly', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir, compactAfterBytes: 2048 });
  const lease = await a.grantLease(60_000);
  for (let i = 0; i < 300; i++) {
    await a.put(`/n/${String(i).padStart(3, '0')}`, bytes(`v${i}`), i % 10 === 0 ? { lease } : {});
    if (i % 7 === 0) await a.delete(`/n/${String(i - 1).padStart(3, '0')}`);
  }
  // Concurrent writes spanning log switches.
  await Promise.all(Array.from({ length: 200 }, (_, i) => a.put(`/c/${i}`, bytes(String(i)))));
  const before = await a.list('/');
  await a.close();
  t.true(readdirSync(dir).includes('snapshot'));
  t.true(logFiles(dir).length <= 2, `old logs removed: ${logFiles(dir).join(', ')}`);

  const b = await EmbeddedStore.open({ dir });
  t.deepEqual(await b.list('/'), before);
  await b.revokeLease(lease);
  t.is(await b.get('/n/010'), undefined, 'lease attachments survive the snapshot');
  t.truthy(await b.get('/n/011'));
  await b.close();
});

test('leases persist with absolute expiry: expired while down means deleted on open', async (t) => {
  const dir = tempDir();
  const clock = new FakeClock(1_000_000);
  const a = await EmbeddedStore.open({ dir, clock });
  const short = await a.grantLease(10_000);
  const long = await a.grantLease(60_000);
  await a.put('/short', bytes('s'), { lease: short });
  await a.put('/long', bytes('l'), { lease: long });
  await clock.advance(5_000);
  await a.keepAlive(short); // now expires at +15 s
  await a.close();

  await clock.advance(20_000); // the store is down; +25 s
  const b = await EmbeddedStore.open({ dir, clock });
  t.is(await b.get('/short'), undefined, 'expired while the store was closed');
  t.truthy(await b.get('/long'));
  const ac = new AbortController();
  const seen: WatchEvent[] = [];
  const watching = (async () => {
    for await (const e of b.watch('/', { signal: ac.signal })) {
      seen.push(e);
      break;
    }
  })();
  await clock.advance(35_000); // +60 s
  t.is(await b.get('/long'), undefined, 'expires on time after reopening');
  // The delete event is released once its record is on disk (real I/O, not the fake clock).
  const timeout = setTimeout(() => ac.abort(), 5_000);
  await watching;
  clearTimeout(timeout);
  t.deepEqual(
    seen.map((e) => [e.type, e.type === 'delete' ? e.key : e.entry.key]),
    [['delete', '/long']],
  );
  await b.close();
});

test('a second open of the same directory fails clearly; a dead owner’s lock is taken over', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir });
  const err = await t.throwsAsync(EmbeddedStore.open({ dir }));
  t.is((err as { code?: string }).code, 'FAILED_PRECONDITION');
  t.regex(err.message, /in use by process \d+/);
  t.regex(err.message, /stop that process first/);
  await a.put('/still', bytes('works'));
  await a.close();

  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  writeFileSync(join(dir, 'lock'), `${dead}\n`);
  writeFileSync(join(dir, `lock.${dead}.tmp`), `${dead}\n`); // it died while taking the lock
  const b = await EmbeddedStore.open({ dir });
  t.truthy(await b.get('/still'));
  await b.close();
  t.false(readdirSync(dir).includes('lock'), 'close releases the lock');
  t.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('lock')),
    [],
    'no lock files are left behind',
  );
});

/** Where the records of a log file end (the rest is preallocated zeros). */
function recordsEnd(buf: Buffer): number {
  return scanFrames(buf, 8, 2 ** 30).validBytes;
}

test('a torn last record is dropped with a warning and the file is cut there', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir });
  for (let i = 0; i < 5; i++) await a.put(`/k/${i}`, bytes(`v${i}`));
  await a.close();
  const log = join(dir, logFiles(dir).at(-1)!);
  const buf = readFileSync(log);
  const end = recordsEnd(buf);
  // Half of a frame: a length that promises more bytes than were written before the crash.
  Buffer.from([0x40, 0, 0, 0, 1, 2, 3, 4, 5, 6]).copy(buf, end);
  writeFileSync(log, buf);

  const { log: logger, lines } = capturingLogger('warn');
  const b = await EmbeddedStore.open({ dir, log: logger });
  t.is((await b.list('/')).entries.length, 5);
  t.is(statSync(log).size, end);
  const warning = lines.find((l) => l['level'] === 40);
  t.truthy(warning, 'a warning is logged');
  t.is(warning!['droppedBytes'], buf.length - end);
  await b.put('/k/5', bytes('v5'));
  await b.close();
  const c = await EmbeddedStore.open({ dir });
  t.is((await c.list('/')).entries.length, 6);
  await c.close();
});

test('a clean shutdown leaves only zeros after the records, and reopening warns about nothing', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir });
  await a.put('/k', bytes('v'));
  await a.close();
  const { log: logger, lines } = capturingLogger('warn');
  const b = await EmbeddedStore.open({ dir, log: logger });
  t.truthy(await b.get('/k'));
  await b.close();
  // A fresh, empty log (nothing written since it was created) is clean too.
  const c = await EmbeddedStore.open({ dir: tempDir(), log: logger });
  await c.close();
  const d = await EmbeddedStore.open({ dir: c.description.slice('embedded:'.length), log: logger });
  await d.close();
  t.deepEqual(lines, []);
});

test('garbage after the valid records (a damaged last record) opens with the valid prefix', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir });
  for (let i = 0; i < 5; i++) await a.put(`/k/${i}`, bytes(`value-${i}`));
  await a.close();
  const log = join(dir, logFiles(dir).at(-1)!);
  const buf = readFileSync(log);
  const end = recordsEnd(buf);
  buf[end - 2] = buf[end - 2]! ^ 0xff; // flip a byte in the last record
  Buffer.from('garbage garbage garbage').copy(buf, end);
  writeFileSync(log, buf);
  const { log: logger, lines } = capturingLogger('warn');
  const b = await EmbeddedStore.open({ dir, log: logger });
  t.deepEqual(
    (await b.list('/')).entries.map((e) => e.key),
    ['/k/0', '/k/1', '/k/2', '/k/3'],
  );
  t.true(lines.some((l) => l['level'] === 40 && l['reason'] === 'crc'));
  await b.close();
});

test('a log cut short while being created (a crash) is started again', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir, compactAfterBytes: 100 });
  for (let i = 0; i < 10; i++) await a.put(`/k/${i}`, bytes('x'.repeat(50)));
  await a.close();
  const newest = logFiles(dir).at(-1)!;
  const gen = Number(newest.slice(4));
  // The next log, as a crash between creating the file and writing its header leaves it.
  writeFileSync(join(dir, `log-${String(gen + 1).padStart(12, '0')}`), Buffer.alloc(3000));
  const b = await EmbeddedStore.open({ dir });
  t.is((await b.list('/')).entries.length, 10);
  await b.put('/k/10', bytes('after'));
  await b.close();
  const c = await EmbeddedStore.open({ dir });
  t.is((await c.list('/')).entries.length, 11);
  await c.close();
});

test('a corrupt snapshot is a clear error naming the file and what to do', async (t) => {
  const dir = tempDir();
  const a = await EmbeddedStore.open({ dir, compactAfterBytes: 100 });
  for (let i = 0; i < 20; i++) await a.put(`/k/${i}`, bytes('x'.repeat(20)));
  await a.close();
  const snap = join(dir, 'snapshot');
  const buf = readFileSync(snap);
  buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x01;
  writeFileSync(snap, buf);
  const err = await t.throwsAsync(EmbeddedStore.open({ dir }));
  t.is((err as { code?: string }).code, 'FAILED_PRECONDITION');
  t.true(err.message.includes(snap), err.message);
  t.regex(err.message, /restore the data directory .* from a backup/);
  t.false(readdirSync(dir).includes('lock'), 'a failed open releases the lock');
});

test('watchers see a change only after it is durable, in revision order', async (t) => {
  const dir = tempDir();
  const store = await EmbeddedStore.open({ dir });
  const ac = new AbortController();
  const seen: number[] = [];
  const watching = (async () => {
    for await (const e of store.watch('/', { signal: ac.signal })) {
      seen.push(e.revision);
      if (seen.length === 100) break;
    }
  })();
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => store.put(`/p/${i}`, bytes('v'))));
  await watching;
  t.deepEqual(
    seen,
    results.map((r) => r.revision),
  );
  await store.close();
});
