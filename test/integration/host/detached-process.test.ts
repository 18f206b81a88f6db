// spawnDetached: the helper it starts has its own session and process group (so a signal to the
// agent's group does not reach it), writes to its log file, and is not waited for.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { processExists, signalProcess, spawnDetached } from '../../../src/host/detached-process.js';

test('the child runs in its own session, logs to the file, and is stopped by pid', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-detached-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logFile = join(dir, 'sub', 'helper.log');
  const pid = await spawnDetached(['sh', '-c', 'echo started; echo oops >&2; exec sleep 30'], {
    logFile,
    env: { PATH: '/usr/bin:/bin' },
  });
  t.teardown(() => {
    signalProcess(pid, 'SIGKILL');
  });
  t.true(processExists(pid));
  // /proc/<pid>/stat: pid (comm) state ppid pgrp session …
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  t.is(Number(fields[2]), pid, 'process group leader');
  t.is(Number(fields[3]), pid, 'session leader');
  for (let i = 0; i < 100 && !(await readFile(logFile, 'utf8')).includes('oops'); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  t.regex(await readFile(logFile, 'utf8'), /started\n[\s\S]*oops\n/);
  signalProcess(pid, 'SIGKILL');
  for (let i = 0; i < 100 && processExists(pid); i++) await new Promise((r) => setTimeout(r, 20));
  t.false(processExists(pid));
  t.notThrows(() => {
    signalProcess(pid, 'SIGKILL');
  }, 'a process that is gone is fine');
});

test('a program that does not exist is EXEC_FAILED with an install hint', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-detached-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await t.throwsAsync(spawnDetached(['/nonexistent/wireguard-go', 'x'], { logFile: join(dir, 'l.log') }), {
    message: /cannot start '\/nonexistent\/wireguard-go x'.*install/,
  });
});
