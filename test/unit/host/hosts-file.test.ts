import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AgentError } from '../../../src/errors/agent-error.js';
import { HostsFile, hostsBlockBegin, hostsBlockEnd } from '../../../src/host/index.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-hosts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// A hosts file as people leave them: comments, tabs, trailing blanks, and a byte that is not UTF-8.
const original = Buffer.concat([
  Buffer.from('127.0.0.1\tlocalhost\n::1     localhost ip6-localhost   \n# caf'),
  Buffer.from([0xe9]),
  Buffer.from(' server\n10.0.0.5\tfiles.corp files\n'),
]);

const web = { address: '169.254.235.142', names: ['web.nsm'] };
const db = { address: 'fd00::7', names: ['db.nsm', 'db'] };
const block = (...lines: string[]): string => [hostsBlockBegin, ...lines, hostsBlockEnd, ''].join('\n');

async function hostsWith(t: ExecutionContext, content: Buffer | string): Promise<string> {
  const path = join(await tempDir(t), 'hosts');
  await writeFile(path, content);
  return path;
}

test('set adds the block at the end and leaves every other byte alone', async (t) => {
  const path = await hostsWith(t, original);
  t.true(await new HostsFile(path).set([web, db]));
  const after = await readFile(path);
  t.deepEqual(after.subarray(0, original.length), original);
  t.is(after.subarray(original.length).toString(), block('169.254.235.142\tweb.nsm', 'fd00::7\tdb.nsm db'));
  t.deepEqual(await new HostsFile(path).entries(), [web, db]);
});

test('set with the same entries does not write', async (t) => {
  const path = await hostsWith(t, original);
  const hosts = new HostsFile(path);
  await hosts.set([web]);
  const before = await stat(path);
  t.false(await hosts.set([web]));
  t.false(await new HostsFile(path).set([web]), 'a fresh instance reads what is there');
  const after = await stat(path);
  t.is(after.ino, before.ino);
  t.is(after.mtimeMs, before.mtimeMs);
});

test('set replaces the block where it stands; lines after it stay after it', async (t) => {
  const withBlock = `127.0.0.1\tlocalhost\n${block('169.254.1.1\told.nsm')}10.0.0.5\tfiles\n`;
  const path = await hostsWith(t, withBlock);
  t.true(await new HostsFile(path).set([web]));
  t.is(
    await readFile(path, 'utf8'),
    `127.0.0.1\tlocalhost\n${block('169.254.235.142\tweb.nsm')}10.0.0.5\tfiles\n`,
  );
});

test('set with no entries removes the block and gives back the original file', async (t) => {
  const path = await hostsWith(t, original);
  const hosts = new HostsFile(path);
  await hosts.set([web, db]);
  t.true(await hosts.set([]));
  t.deepEqual(await readFile(path), original);
  t.false(await hosts.set([]), 'no block, nothing to remove');
});

test('a file that does not end in a newline gets one before the block', async (t) => {
  const path = await hostsWith(t, '127.0.0.1 localhost');
  const hosts = new HostsFile(path);
  await hosts.set([web]);
  t.is(await readFile(path, 'utf8'), `127.0.0.1 localhost\n${block('169.254.235.142\tweb.nsm')}`);
  await hosts.set([]);
  t.is(await readFile(path, 'utf8'), '127.0.0.1 localhost\n');
});

test('a block in the middle of a file without final newline keeps it without one', async (t) => {
  const content = `${block('169.254.1.1\told.nsm')}10.0.0.5 files`;
  const path = await hostsWith(t, content);
  await new HostsFile(path).set([web]);
  t.is(await readFile(path, 'utf8'), `${block('169.254.235.142\tweb.nsm')}10.0.0.5 files`);
});

test('the file is replaced atomically with its mode and owner, and no temp file is left', async (t) => {
  const path = await hostsWith(t, original);
  await chmod(path, 0o640);
  const root = process.getuid?.() === 0;
  if (root) await chown(path, 4321, 4322);
  const before = await stat(path);
  await new HostsFile(path).set([web]);
  const after = await stat(path);
  t.not(after.ino, before.ino, 'a new inode: renamed into place, never half-written');
  t.is(after.mode & 0o7777, 0o640);
  if (root) t.deepEqual([after.uid, after.gid], [4321, 4322]);
  t.deepEqual(await readdir(join(path, '..')), ['hosts']);
});

test('a missing file is created only when there is something to write, from the initial content', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'netns', 'blue', 'hosts');
  t.false(await new HostsFile(path).set([]));
  await t.throwsAsync(stat(path), { code: 'ENOENT' });

  t.true(await new HostsFile(path, { initial: '127.0.0.1 localhost\n' }).set([web]));
  t.is(await readFile(path, 'utf8'), `127.0.0.1 localhost\n${block('169.254.235.142\tweb.nsm')}`);
  t.is((await stat(path)).mode & 0o777, 0o644);
});

test('a hosts file that cannot be read is an AgentError with a hint', async (t) => {
  const dir = await tempDir(t);
  const e = await t.throwsAsync(new HostsFile(dir).set([web]), { instanceOf: AgentError });
  t.is(e.code, 'FAILED_PRECONDITION');
  t.regex(e.message, new RegExp(`cannot read the hosts file ${dir}`));
  t.regex(e.hint ?? '', /regular file/);
});

test('a directory that cannot be written is PERMISSION_DENIED with a hint', async (t) => {
  if (process.getuid?.() === 0) {
    // root writes anywhere; a read-only bind mount is what stops it.
    const dir = await tempDir(t);
    const ro = join(dir, 'ro');
    await mkdir(ro);
    await writeFile(join(ro, 'hosts'), original);
    try {
      execFileSync('mount', ['--bind', '-o', 'ro', ro, ro], { stdio: 'ignore' });
    } catch {
      t.pass('cannot mount here; skipped');
      return;
    }
    t.teardown(() => execFileSync('umount', [ro]));
    const e = await t.throwsAsync(new HostsFile(join(ro, 'hosts')).set([web]), { instanceOf: AgentError });
    t.is(e.code, 'PERMISSION_DENIED');
    t.regex(e.hint ?? '', /run the agent as root, or make/);
    return;
  }
  const dir = await tempDir(t);
  const path = join(dir, 'hosts');
  await writeFile(path, original);
  await chmod(dir, 0o500);
  t.teardown(() => chmod(dir, 0o700));
  const e = await t.throwsAsync(new HostsFile(path).set([web]), { instanceOf: AgentError });
  t.is(e.code, 'PERMISSION_DENIED');
});

test('a bind-mounted hosts file (as in containers) is rewritten in place', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to bind-mount; skipped');
    return;
  }
  const dir = await tempDir(t);
  const source = join(dir, 'source');
  const target = join(dir, 'hosts');
  await writeFile(source, original);
  await writeFile(target, '');
  try {
    execFileSync('mount', ['--bind', source, target], { stdio: 'ignore' });
  } catch {
    t.pass('cannot mount here; skipped');
    return;
  }
  t.teardown(() => execFileSync('umount', [target]));
  t.true(await new HostsFile(target).set([web]));
  t.is((await readFile(source)).subarray(original.length).toString(), block('169.254.235.142\tweb.nsm'));
  t.true(await new HostsFile(target).set([]));
  t.deepEqual(await readFile(source), original);
  t.deepEqual((await readdir(dir)).sort(), ['hosts', 'source'], 'no temp file left');
});

test('a begin marker without an end is refused and the file left alone', async (t) => {
  const broken = `127.0.0.1 localhost\n${hostsBlockBegin}\n169.254.1.1 old.nsm\n10.0.0.5 files\n`;
  const path = await hostsWith(t, broken);
  const e = await t.throwsAsync(new HostsFile(path).set([web]), { instanceOf: AgentError });
  t.is(e.code, 'FAILED_PRECONDITION');
  t.regex(e.message, /line 2 but no "# END nsm-agent"/);
  t.is(await readFile(path, 'utf8'), broken);
});

test('two blocks (a hand-made copy) become one, at the first', async (t) => {
  const path = await hostsWith(t, `${block('1.1.1.1 a.nsm')}10.0.0.5 files\n${block('2.2.2.2 b.nsm')}`);
  await new HostsFile(path).set([web]);
  t.is(await readFile(path, 'utf8'), `${block('169.254.235.142\tweb.nsm')}10.0.0.5 files\n`);
});

test('entries that would break the file are refused before anything is written', async (t) => {
  const path = await hostsWith(t, original);
  const hosts = new HostsFile(path);
  for (const [entry, pattern] of [
    [{ address: '169.254.1.1/32', names: ['web.nsm'] }, /is not an IP address/],
    [{ address: '169.254.1.1', names: [] }, /has no names/],
    [{ address: '169.254.1.1', names: ['web.nsm\n10.0.0.1 evil'] }, /is not a host name/],
    [{ address: '169.254.1.1', names: ['-web'] }, /is not a host name/],
  ] as const) {
    const e = await t.throwsAsync(hosts.set([entry]), { instanceOf: AgentError });
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.message, pattern);
  }
  t.deepEqual(await readFile(path), original);
});

test('concurrent sets run one after the other; the last one wins', async (t) => {
  const path = await hostsWith(t, original);
  const hosts = new HostsFile(path);
  await Promise.all([hosts.set([web]), hosts.set([db]), hosts.set([web, db])]);
  t.deepEqual(await hosts.entries(), [web, db]);
  t.deepEqual(await readdir(join(path, '..')), ['hosts']);
});

test('inPlace: a process that mounted the file before (ip netns exec) sees the change; a rename it would not', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to bind-mount; skipped');
    return;
  }
  const dir = await tempDir(t);
  const netnsHosts = join(dir, 'netns-hosts'); // /etc/netns/<ns>/hosts
  const seen = join(dir, 'seen'); // /etc/hosts as a process started by `ip netns exec` sees it
  await writeFile(netnsHosts, original);
  await writeFile(seen, '');
  try {
    execFileSync('mount', ['--bind', netnsHosts, seen], { stdio: 'ignore' });
  } catch {
    t.pass('cannot mount here; skipped');
    return;
  }
  t.teardown(() => execFileSync('umount', [seen]));
  const inode = (await stat(netnsHosts)).ino;

  await new HostsFile(netnsHosts, { inPlace: true }).set([web]);
  t.is((await stat(netnsHosts)).ino, inode);
  t.deepEqual(await new HostsFile(seen).entries(), [web], 'the running process sees the entry');
  t.is((await stat(netnsHosts)).mode & 0o777, 0o644);

  await new HostsFile(netnsHosts).set([db]);
  t.deepEqual(await new HostsFile(seen).entries(), [web], 'renamed over: the mount still shows the old file');
  t.deepEqual(await new HostsFile(netnsHosts).entries(), [db]);
});
