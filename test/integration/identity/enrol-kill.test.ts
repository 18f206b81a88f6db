// R4 with a real kill -9: the enrolling process dies between steps; the files it left must read as
// a clear state (enrolled, or re-enrolment required), never as a half identity.
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { readIdentityState } from '../../../src/identity/index.js';
import { controlServer, filesUnder, tempDir } from './control-server.js';

const child = fileURLToPath(new URL('./enrol-child.ts', import.meta.url));

function runChild(
  stateDir: string,
  crashAt: string,
  token: string,
): Promise<{ signal: string | null; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, stateDir, crashAt], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ code, signal }));
    p.stdin.end(token);
  });
}

for (const crashAt of ['key-persisted', 'svid-received'] as const) {
  test(`kill -9 at ${crashAt}: the host reads "re-enrolment required"`, async (t) => {
    const cs = await controlServer(t);
    const stateDir = await tempDir(t);
    const token = await cs.token();
    const { signal } = await runChild(stateDir, crashAt, token);
    t.is(signal, 'SIGKILL');
    t.deepEqual(await filesUnder(stateDir), ['identity/svid.key']);
    const state = await readIdentityState(stateDir);
    t.is(state.state, 're-enrolment-required');
    if (crashAt === 'svid-received') {
      // The server issued an SVID the host never saved: the token is spent, as the reason says.
      t.is((await cs.hosts.list()).length, 1);
      t.deepEqual(
        (await cs.tokens.list()).map((i) => [i.state, i.usesLeft]),
        [['used', 0]],
      );
    }
  });
}

test('kill -9 right after the identity is persisted: the host is enrolled', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const { signal } = await runChild(stateDir, 'identity-persisted', await cs.token());
  t.is(signal, 'SIGKILL');
  t.is((await readIdentityState(stateDir)).state, 'enrolled');
});

test('the child enrols normally when not killed', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const { code } = await runChild(stateDir, 'none', await cs.token());
  t.is(code, 0);
  t.is((await readIdentityState(stateDir)).state, 'enrolled');
});
