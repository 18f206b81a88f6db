import 'reflect-metadata';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import test from 'ava';
import { FakeClock } from '../../../src/host/fake/index.js';
import {
  agentSpiffeId,
  generateEcKeyPair,
  identityFiles,
  issueSvid,
  loadAgentIdentity,
  readIdentityState,
} from '../../../src/identity/index.js';
import type { IdentityMeta, MeshCa } from '../../../src/identity/index.js';
import { TD, freshCa, tempDir } from './fixtures.js';

/** Writes a complete identity as enrollHost would. */
async function writeIdentity(stateDir: string, ca: MeshCa, ttlMs = 3600_000): Promise<IdentityMeta> {
  const keys = await generateEcKeyPair();
  const spiffeId = agentSpiffeId(TD, 'h1');
  const svid = await issueSvid(ca, { spiffeId, publicKeySpki: keys.spki, ttlMs });
  await mkdir(identityFiles.dir(stateDir), { recursive: true });
  await writeFile(identityFiles.key(stateDir), keys.privateKeyPem, { mode: 0o600 });
  await writeFile(identityFiles.svid(stateDir), svid.certPem);
  await writeFile(identityFiles.bundle(stateDir), ca.bundlePem);
  const meta: IdentityMeta = {
    version: 1,
    spiffeId,
    hostId: 'h1',
    trustDomain: TD,
    serverUrl: 'tcp://127.0.0.1:5002',
    caPin: 'sha256:00',
    enrolledAt: Date.now(),
  };
  await writeFile(identityFiles.meta(stateDir), JSON.stringify(meta));
  return meta;
}

test('an empty state dir is not enrolled', async (t) => {
  t.deepEqual(await readIdentityState(await tempDir(t)), { state: 'not-enrolled' });
});

test('a complete identity is enrolled, and loadAgentIdentity hands out the PEMs', async (t) => {
  const { ca } = await freshCa(t);
  const stateDir = await tempDir(t);
  const meta = await writeIdentity(stateDir, ca);
  const state = await readIdentityState(stateDir);
  t.is(state.state, 'enrolled');
  const loaded = await loadAgentIdentity(stateDir);
  t.is(loaded.identity?.meta.spiffeId, meta.spiffeId);
  t.regex(loaded.identity?.keyPem ?? '', /BEGIN PRIVATE KEY/);
});

const breakages: [string, (dir: string) => Promise<void>, RegExp][] = [
  ['missing key', (d) => rm(identityFiles.key(d)), /no private key/],
  ['missing svid', (d) => rm(identityFiles.svid(d)), /no certificate/],
  ['missing bundle', (d) => rm(identityFiles.bundle(d)), /no trust bundle/],
  ['unreadable identity.json', (d) => writeFile(identityFiles.meta(d), '{'), /unreadable identity\.json/],
  [
    'key of another certificate',
    async (d) => writeFile(identityFiles.key(d), (await generateEcKeyPair()).privateKeyPem),
    /key that does not belong/,
  ],
  ['no identity.json', (d) => rm(identityFiles.meta(d)), /enrolment was interrupted/],
];
for (const [name, breakIt, re] of breakages) {
  test(`${name}: re-enrolment required, with the reason and what to do`, async (t) => {
    const { ca } = await freshCa(t);
    const stateDir = await tempDir(t);
    await writeIdentity(stateDir, ca);
    await breakIt(stateDir);
    const state = await readIdentityState(stateDir);
    t.is(state.state, 're-enrolment-required');
    if (state.state === 're-enrolment-required') {
      t.regex(state.reason, re);
      t.regex(state.reason, /nsm-agent enroll --token/);
    }
  });
}

test('a certificate from another CA is refused by the bundle check', async (t) => {
  const { ca } = await freshCa(t);
  const other = await freshCa(t);
  const stateDir = await tempDir(t);
  await writeIdentity(stateDir, ca);
  await writeFile(identityFiles.bundle(stateDir), other.ca.bundlePem);
  const state = await readIdentityState(stateDir);
  t.is(state.state, 're-enrolment-required');
  if (state.state === 're-enrolment-required') t.regex(state.reason, /trust bundle does not vouch/);
});

test('an expired SVID means re-enrolment (a join-token identity cannot re-attest)', async (t) => {
  const { ca } = await freshCa(t);
  const stateDir = await tempDir(t);
  await writeIdentity(stateDir, ca, 60_000);
  const later = new FakeClock(Date.now() + 3600_000);
  const state = await readIdentityState(stateDir, later);
  t.is(state.state, 're-enrolment-required');
  if (state.state === 're-enrolment-required') t.regex(state.reason, /expired at/);
});
