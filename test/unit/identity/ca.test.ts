import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import * as x509 from '@peculiar/x509';
import { spiffeIdFromCertificate } from '../../../src/api/grpc/index.js';
import { AgentError } from '../../../src/errors/index.js';
import {
  caFiles,
  createAgentCsr,
  generateEcKeyPair,
  initCa,
  issueSvid,
  loadCa,
} from '../../../src/identity/index.js';
import { TD, freshCa, tempDir } from './fixtures.js';

const run = promisify(execFile);

test('initCa makes a P-256 root CA (cA, keyCertSign|cRLSign, name-constrained) and the server SVID', async (t) => {
  const { ca, server, dataDir } = await freshCa(t);
  const cert = new x509.X509Certificate(ca.certDer);
  t.true(cert.getExtension(x509.BasicConstraintsExtension)?.ca);
  t.is(
    cert.getExtension(x509.KeyUsagesExtension)?.usages,
    x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
  );
  const nc = cert.getExtension('2.5.29.30');
  t.truthy(nc);
  t.true(nc?.critical);
  t.is((cert.publicKey.algorithm as { namedCurve?: string }).namedCurve, 'P-256');
  const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365 * 24 * 3600_000);
  t.true(years > 9.9 && years < 10.1);
  t.is(spiffeIdFromCertificate(server.certDer), `spiffe://${TD}/server`);

  for (const key of [caFiles.caKey(dataDir), caFiles.serverKey(dataDir)]) {
    t.is((await stat(key)).mode & 0o777, 0o600, key);
  }
  t.is((await stat(caFiles.dir(dataDir))).mode & 0o777, 0o700);
});

test('initCa refuses to overwrite an existing CA', async (t) => {
  const { dataDir } = await freshCa(t);
  const before = await readFile(caFiles.caKey(dataDir), 'utf8');
  const e = await t.throwsAsync(initCa({ trustDomain: TD, dataDir }), { instanceOf: AgentError });
  t.is(e.code, 'ALREADY_EXISTS');
  t.regex(e.message, /already exists.*server run/);
  t.is(await readFile(caFiles.caKey(dataDir), 'utf8'), before);
});

test('initCa rejects a trust domain given as a URI or with bad characters', async (t) => {
  const dataDir = await tempDir(t);
  const e = await t.throwsAsync(initCa({ trustDomain: 'spiffe://mesh.test', dataDir }), {
    instanceOf: AgentError,
  });
  t.regex(e.message, /without spiffe:\/\/.*--trust-domain mesh\.test/);
  await t.throwsAsync(initCa({ trustDomain: 'Mesh.Test', dataDir }), { code: 'INVALID_ARGUMENT' } as never);
});

test('loadCa reads back what initCa wrote', async (t) => {
  const made = await freshCa(t);
  const loaded = await loadCa(made.dataDir);
  t.is(loaded.ca.trustDomain, TD);
  t.deepEqual(loaded.ca.pin, made.ca.pin);
  t.is(loaded.server.spiffeId, `spiffe://${TD}/server`);
  t.is(loaded.serverTlsChainPem, made.serverTlsChainPem);
  // The loaded key signs certificates that chain to the CA.
  const keys = await generateEcKeyPair();
  const svid = await issueSvid(loaded.ca, {
    spiffeId: `spiffe://${TD}/x`,
    publicKeySpki: keys.spki,
    ttlMs: 60_000,
  });
  t.true(new X509Certificate(svid.certDer).verify(new X509Certificate(made.ca.certDer).publicKey));
});

test('loadCa on a dir without a CA says to run server init', async (t) => {
  const dataDir = await tempDir(t);
  const e = await t.throwsAsync(loadCa(dataDir), { instanceOf: AgentError });
  t.is(e.code, 'FAILED_PRECONDITION');
  t.regex(e.message, /no mesh CA.*nsm-agent server init/);
});

test('loadCa refuses a server key that does not match its certificate', async (t) => {
  const { dataDir } = await freshCa(t);
  await writeFile(caFiles.serverKey(dataDir), (await generateEcKeyPair()).privateKeyPem);
  const e = await t.throwsAsync(loadCa(dataDir), { instanceOf: AgentError });
  t.regex(e.message, /server\.key is not the key of/);
});

test('issueSvid from a CSR: one URI SAN, cA=false, no keyCertSign/cRLSign, serverAuth+clientAuth, random serial', async (t) => {
  const { ca } = await freshCa(t);
  const keys = await generateEcKeyPair();
  const csrDer = await createAgentCsr(keys);
  const id = `spiffe://${TD}/agent/h1`;
  const a = await issueSvid(ca, { spiffeId: id, csrDer, ttlMs: 3600_000 });
  const b = await issueSvid(ca, { spiffeId: id, csrDer, ttlMs: 3600_000 });
  t.not(a.serial, b.serial);
  const cert = new x509.X509Certificate(a.certDer);
  const sans = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  t.deepEqual(
    sans.map((n) => [n.type, n.value]),
    [['url', id]],
  );
  t.false(cert.getExtension(x509.BasicConstraintsExtension)?.ca);
  const usages = cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
  t.true((usages & x509.KeyUsageFlags.digitalSignature) !== 0);
  t.is(usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign), 0);
  t.deepEqual(
    [...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])],
    [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  );
  t.is(spiffeIdFromCertificate(a.certDer), id);
  t.true(Buffer.from(cert.publicKey.rawData).equals(Buffer.from(keys.spki)));
  t.true(a.notAfter - a.notBefore <= 3600_000 + 60_000);
});

test('issueSvid refuses another trust domain and a non-P-256 key', async (t) => {
  const { ca } = await freshCa(t);
  const keys = await generateEcKeyPair();
  const e = await t.throwsAsync(
    issueSvid(ca, { spiffeId: 'spiffe://other.test/agent/x', publicKeySpki: keys.spki, ttlMs: 1000 }),
    { instanceOf: AgentError },
  );
  t.is(e.code, 'INVALID_ARGUMENT');
  t.regex(e.message, /not in this mesh's trust domain mesh\.test/);
  const { generateKeyPairSync } = await import('node:crypto');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  const e2 = await t.throwsAsync(
    issueSvid(ca, { spiffeId: `spiffe://${TD}/x`, publicKeySpki: new Uint8Array(p384), ttlMs: 1000 }),
    { instanceOf: AgentError },
  );
  t.regex(e2.message, /EC P-384.*EC P-256/);
});

test('openssl verify accepts our SVIDs and, by the name constraint, refuses a leaf for another trust domain', async (t) => {
  const { ca, server, dataDir } = await freshCa(t);
  const dir = await tempDir(t);
  const leaf = join(dir, 'server.pem');
  await writeFile(leaf, server.certPem);
  const ok = await run('openssl', [
    'verify',
    '-x509_strict',
    '-purpose',
    'sslclient',
    '-CAfile',
    caFiles.caCert(dataDir),
    leaf,
  ]);
  t.regex(ok.stdout, /: OK/);
  const ok2 = await run('openssl', [
    'verify',
    '-purpose',
    'sslserver',
    '-CAfile',
    caFiles.caCert(dataDir),
    leaf,
  ]);
  t.regex(ok2.stdout, /: OK/);

  // Signed with the CA key directly, bypassing issueSvid's trust-domain check.
  const keys = await generateEcKeyPair();
  const foreign = await x509.X509CertificateGenerator.create({
    subject: 'O=nsm-agent',
    issuer: new x509.X509Certificate(ca.certDer).subject,
    publicKey: keys.spki,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://evil.test/agent/x' }]),
    ],
  });
  const bad = join(dir, 'foreign.pem');
  await writeFile(bad, foreign.toString('pem'));
  const err = await t.throwsAsync(run('openssl', ['verify', '-CAfile', caFiles.caCert(dataDir), bad]));
  t.regex(
    String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr),
    /permitted subtree violation/,
  );
});

test('an interrupted init (key written, ca.pem not) is named as such by loadCa and initCa', async (t) => {
  const { dataDir } = await freshCa(t);
  await rm(caFiles.caCert(dataDir));
  const load = await t.throwsAsync(loadCa(dataDir), { instanceOf: AgentError });
  t.regex(load.message, /earlier `server init` .* did not finish.*remove .*ca and run server init again/);
  const init = await t.throwsAsync(initCa({ trustDomain: TD, dataDir }), { instanceOf: AgentError });
  t.regex(init.message, /did not finish/);
});
