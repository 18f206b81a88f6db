// Shared set-up for identity tests: temp dirs removed with the test, a CA made once per test.
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { initCa } from '../../../src/identity/index.js';
import type { ServerPki } from '../../../src/identity/index.js';

export const TD = 'mesh.test';

export async function tempDir(t: ExecutionContext, prefix = 'nsm-id-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh mesh CA in its own data dir. */
export async function freshCa(
  t: ExecutionContext,
  trustDomain = TD,
): Promise<ServerPki & { dataDir: string }> {
  const dataDir = await tempDir(t, 'nsm-ca-');
  return { ...(await initCa({ trustDomain, dataDir })), dataDir };
}
