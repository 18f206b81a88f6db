// The daemon's connection journal: what a restarted agent adopts. Round trip, coalesced writes,
// and a damaged or foreign file refused with what to do (never guessed at).
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ConnectionSchema, create } from '../../../src/api/index.js';
import { Journal, journalAtEdge, journalPath } from '../../../src/daemon/agent/journal.js';
import type { ChainContext } from '../../../src/chain/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { testContext } from '../../helpers/chain.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'nsm-journal-'));
}

test('a journal written by one run is read back whole by the next (0600)', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  j.data.entries.set('c1/wireguard-client', {
    kind: 'tunnel',
    peerPublicKey: 'x'.repeat(43) + '=',
    endpoint: '10.0.0.2:51820',
    remotePrefixes: ['169.254.1.1/32'],
  });
  j.data.entries.set('c1/kernel-server', { kind: 'host', addresses: ['169.254.2.2/32'] });
  j.data.clients.set(
    'web\u0000',
    create(ConnectionSchema, {
      id: 'a-web-host',
      networkService: 'web',
      path: {
        index: 0,
        pathSegments: [
          { name: 'a-nsc', id: 'a-web-host' },
          { name: 'a', id: 'c1' },
        ],
      },
    }),
  );
  j.data.served.set('s1', { expiresAtMs: 1_800_000_000_000 });
  j.data.remotes.set('c1', 'tcp://10.0.0.2:5001');
  await j.flush();
  t.is((await stat(journalPath(dir))).mode & 0o777, 0o600);

  const again = await Journal.open(dir);
  t.deepEqual(Object.fromEntries(again.data.entries), Object.fromEntries(j.data.entries));
  const conn = again.data.clients.get('web\u0000');
  t.is(conn?.id, 'a-web-host');
  t.deepEqual(
    conn?.path?.pathSegments.map((s) => s.id),
    ['a-web-host', 'c1'],
  );
  t.deepEqual(again.data.served.get('s1'), { expiresAtMs: 1_800_000_000_000 });
  t.is(again.data.remotes.get('c1'), 'tcp://10.0.0.2:5001');
});

test('no journal yet is an empty one; concurrent flushes end with the last state on disk', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  t.is(j.data.entries.size + j.data.clients.size + j.data.served.size + j.data.remotes.size, 0);
  const flushes: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) {
    j.data.remotes.set(`c${i}`, `tcp://10.0.0.${i}:5001`);
    flushes.push(j.flush());
  }
  await Promise.all(flushes);
  const onDisk = JSON.parse(await readFile(journalPath(dir), 'utf8')) as { remotes: Record<string, string> };
  t.is(Object.keys(onDisk.remotes).length, 20);
});

test('a damaged journal is refused with the file named and how to start over', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await (await Journal.open(dir)).flush();
  await writeFile(journalPath(dir), '{"version":1,"entries":');
  const e = await t.throwsAsync(Journal.open(dir));
  t.true(AgentError.is(e, 'FAILED_PRECONDITION'));
  t.regex(e.message, /connections\.json is damaged/);
  t.regex(e.message, /mv .*connections\.json .*\.bad/);
});

test('a journal of another format version is refused, not guessed at', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await (await Journal.open(dir)).flush();
  await writeFile(
    journalPath(dir),
    JSON.stringify({ version: 7, entries: {}, clients: {}, served: {}, remotes: {} }),
  );
  const e = await t.throwsAsync(Journal.open(dir));
  t.regex(e.message, /unknown version 7/);
});

test('a flush does not wait for writes asked after it (no convoy behind a busy journal)', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  let firstDone = false;
  const first = j.flush().then(() => (firstDone = true));
  // Others keep asking for writes for 300 ms; the first caller must not wait for all of them.
  const others: Promise<void>[] = [];
  const until = Date.now() + 300;
  let i = 0;
  while (Date.now() < until) {
    j.data.remotes.set(`c${i++}`, 'tcp://10.0.0.1:5001');
    others.push(j.flush());
    await new Promise((r) => setTimeout(r, 1));
  }
  const doneWhileBusy = firstDone;
  await first;
  await Promise.all(others);
  t.true(doneWhileBusy, `the first flush waited for all ${others.length} later ones`);
  t.is(
    Object.keys((JSON.parse(await readFile(journalPath(dir), 'utf8')) as { remotes: object }).remotes).length,
    others.length,
  );
});

test('flushSince: a change made before the mark rides on the next write anyone asks for, costs a write of its own only when none started, and hears that write fail', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  const onDisk = async (): Promise<{ served: Record<string, unknown>; remotes: Record<string, unknown> }> =>
    JSON.parse(await readFile(journalPath(dir), 'utf8')) as {
      served: Record<string, unknown>;
      remotes: Record<string, unknown>;
    };
  // The served record first, then another part's change and its flush (the data plane's entries).
  j.data.served.set('s1', { expiresAtMs: 1_800_000_000_000 });
  const m1 = j.mark();
  j.data.remotes.set('c1', 'tcp://10.0.0.2:5001');
  const theirs = j.flush();
  await j.flushSince(m1);
  t.deepEqual((await onDisk()).served, { s1: { expiresAtMs: 1_800_000_000_000 } });
  await theirs;
  const ino = (await stat(journalPath(dir))).ino;
  await j.flushSince(m1);
  t.is((await stat(journalPath(dir))).ino, ino, 'already on disk: no second write');

  // Nothing started since the mark: it writes.
  j.data.served.set('s2', { expiresAtMs: 1_800_000_000_001 });
  const m2 = j.mark();
  await j.flushSince(m2);
  t.not((await stat(journalPath(dir))).ino, ino);
  t.deepEqual(Object.keys((await onDisk()).served), ['s1', 's2']);

  // The write it rides on fails (the journal's directory is a file now): it is told.
  await rm(join(dir, 'agent'), { recursive: true, force: true });
  await writeFile(join(dir, 'agent'), 'not a directory');
  j.data.served.set('s3', { expiresAtMs: 1_800_000_000_002 });
  const m3 = j.mark();
  const failing = j.flush();
  await t.throwsAsync(j.flushSince(m3));
  await t.throwsAsync(failing);
});

test('a refreshed connection (a new object) replaces the old one on disk; read-back connections are kept as read', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  const first = (id: string, endpoint: string) =>
    create(ConnectionSchema, { id, networkService: 'web', networkServiceEndpointName: endpoint });
  j.data.clients.set('web\u0000', first('a-web-host', 'ep-1'));
  j.data.clients.set('db\u0000', first('a-db-host', 'ep-db'));
  await j.flush();
  // A refresh that landed on another endpoint stores a new connection object.
  j.data.clients.set('web\u0000', first('a-web-host', 'ep-2'));
  await j.flush();
  const again = await Journal.open(dir);
  t.is(again.data.clients.get('web\u0000')?.networkServiceEndpointName, 'ep-2');
  t.is(again.data.clients.get('db\u0000')?.networkServiceEndpointName, 'ep-db');

  // The next run writes what it read back unchanged, and its own changes on top.
  again.data.clients.delete('db\u0000');
  again.data.remotes.set('c9', 'tcp://10.0.0.9:5001');
  await again.flush();
  const third = await Journal.open(dir);
  t.deepEqual([...third.data.clients.keys()], ['web\u0000']);
  t.is(third.data.clients.get('web\u0000')?.networkServiceEndpointName, 'ep-2');
  t.is(third.data.remotes.get('c9'), 'tcp://10.0.0.9:5001');
});

test('a journal whose directory was removed under the running agent is written again', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  j.data.remotes.set('c1', 'tcp://10.0.0.1:5001');
  await j.flush();
  await rm(join(dir, 'agent'), { recursive: true });
  j.data.remotes.set('c2', 'tcp://10.0.0.2:5001');
  await j.flush();
  const again = await Journal.open(dir);
  t.deepEqual([...again.data.remotes.keys()].sort(), ['c1', 'c2']);
});

/** What every element that journals does: write now, unless its request's edge will. */
async function record(j: Journal, ctx: ChainContext, id: string): Promise<void> {
  j.data.remotes.set(id, 'tcp://10.0.0.2:5001');
  await j.flushUnlessAtEdge(ctx);
}

test('journalAtEdge: the changes of a request reach the disk in one write when it is done, before its answer; a context kept for later writes again', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  await j.flush();
  const ino = async (): Promise<number> => (await stat(journalPath(dir))).ino;
  const remotes = async (): Promise<string[]> =>
    Object.keys((JSON.parse(await readFile(journalPath(dir), 'utf8')) as { remotes: object }).remotes);
  const before = await ino();
  let kept: ChainContext | undefined;
  const answer = await journalAtEdge(j, testContext(), async (ctx) => {
    kept = ctx;
    await record(j, ctx, 'c1'); // three elements on the way back up
    await record(j, ctx, 'c2');
    await record(j, ctx, 'c3');
    t.is(await ino(), before, 'an element wrote the journal itself');
    return 'up';
  });
  t.is(answer, 'up');
  t.not(await ino(), before, 'the answer came before the write');
  t.deepEqual(await remotes(), ['c1', 'c2', 'c3']);

  // Heal or an event of begin runs with the context later: the edge is gone, the element writes.
  const after = await ino();
  await record(j, kept ?? testContext(), 'c4');
  t.not(await ino(), after);
  t.deepEqual(await remotes(), ['c1', 'c2', 'c3', 'c4']);
});

test('journalAtEdge: a failed request has what it undid written and fails with its own error; writes: false leaves the write to the caller', async (t) => {
  const dir = await tmp();
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const j = await Journal.open(dir);
  const remotes = async (): Promise<string[]> =>
    Object.keys((JSON.parse(await readFile(journalPath(dir), 'utf8')) as { remotes: object }).remotes);
  j.data.remotes.set('old', 'tcp://10.0.0.9:5001');
  await j.flush();
  const failed = journalAtEdge(j, testContext(), async (ctx) => {
    await record(j, ctx, 'c1');
    await j.flush(); // someone else's write holds c1 meanwhile
    j.data.remotes.delete('c1'); // undone: the request failed further down
    throw new AgentError('UNAVAILABLE', 'the remote agent did not answer');
  });
  await t.throwsAsync(failed, { message: 'the remote agent did not answer' });
  t.deepEqual(await remotes(), ['old']);

  const ino = (await stat(journalPath(dir))).ino;
  await journalAtEdge(j, testContext(), (ctx) => record(j, ctx, 'c2'), { writes: false });
  t.is((await stat(journalPath(dir))).ino, ino, 'written although the caller writes');
  await j.flush();
  t.deepEqual(await remotes(), ['old', 'c2']);
});
