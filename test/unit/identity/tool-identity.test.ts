import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import test from 'ava';
import { spiffeIdFromCertificate } from '../../../src/api/grpc/index.js';
import { issueToolIdentity } from '../../../src/identity/index.js';
import { TD, freshCa, tempDir } from './fixtures.js';

const run = promisify(execFile);

test('issueToolIdentity writes svid.pem, svid.key (0600) and bundle.pem that openssl accepts', async (t) => {
  const { ca } = await freshCa(t);
  const outDir = await tempDir(t);
  const files = await issueToolIdentity({ ca, spiffeId: `spiffe://${TD}/tool/grpcurl`, outDir });
  t.is((await stat(files.keyPath)).mode & 0o777, 0o600);
  t.is(await readFile(files.bundlePath, 'utf8'), ca.bundlePem);
  const pem = await readFile(files.certPath, 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  t.is(spiffeIdFromCertificate(der), `spiffe://${TD}/tool/grpcurl`);
  const { stdout } = await run('openssl', [
    'verify',
    '-purpose',
    'sslclient',
    '-CAfile',
    files.bundlePath,
    files.certPath,
  ]);
  t.regex(stdout, /: OK/);
  const days = (files.expiresAt - Date.now()) / 86_400_000;
  t.true(days > 29 && days <= 30);
});

test('issueToolIdentity refuses agent and server identities and other trust domains', async (t) => {
  const { ca } = await freshCa(t);
  const outDir = await tempDir(t);
  for (const id of [`spiffe://${TD}/server`, `spiffe://${TD}/agent/h1`, `spiffe://${TD}/agent`]) {
    await t.throwsAsync(issueToolIdentity({ ca, spiffeId: id, outDir }), { message: /reserved.*tool/ }, id);
  }
  await t.throwsAsync(issueToolIdentity({ ca, spiffeId: 'spiffe://other.test/tool/x', outDir }), {
    message: /not in this mesh's trust domain/,
  });
  await t.throwsAsync(issueToolIdentity({ ca, spiffeId: 'not-an-id', outDir }), {
    message: /not a valid SPIFFE ID/,
  });
});
