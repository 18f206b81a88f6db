// Enrolment end to end over real TLS on loopback: reliability R1–R4, R7, R8.
import 'reflect-metadata';
import { readFile, stat, writeFile } from 'node:fs/promises';
import test from 'ava';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { clientCredentials, dial, serverCredentials, startServer } from '../../../src/api/grpc/index.js';
import { EnrolmentService } from '../../../src/api/index.js';
import { AgentError } from '../../../src/errors/index.js';
import {
  createAgentCsr,
  TOKEN_PREFIX,
  enrollHost,
  formatPin,
  formatToken,
  parseToken,
  generateEcKeyPair,
  identityFiles,
  initCa,
  issueToolIdentity,
  loadAgentIdentity,
  readIdentityState,
  renewHost,
} from '../../../src/identity/index.js';
import type { ServerPki } from '../../../src/identity/index.js';
import { enrolmentServerCredentials, enrolmentService } from '../../../src/identity/index.js';
import { createLogger, silentLogger } from '../../../src/log/index.js';
import { createTestCa, issueSvid as issueTestSvid } from '../../helpers/pki.js';
import { FACTS, TD, controlServer, filesUnder, tempDir } from './control-server.js';

test('a host enrols with a token, gets spiffe://<td>/agent/<id> and the bundle, and can renew over mTLS', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const token = await cs.token({ labels: { site: 'lab' } });
  const enrolled = await enrollHost({ token, stateDir, hostFacts: FACTS });
  t.regex(enrolled.spiffeId, new RegExp(`^spiffe://${TD}/agent/[0-9a-f-]{36}$`));
  t.is(enrolled.trustDomain, TD);

  const state = await readIdentityState(stateDir);
  t.is(state.state, 'enrolled');
  if (state.state === 'enrolled') {
    t.is(state.spiffeId, enrolled.spiffeId);
    t.is(state.serverUrl, cs.url);
  }
  t.is((await stat(identityFiles.key(stateDir))).mode & 0o777, 0o600);
  t.is((await stat(identityFiles.dir(stateDir))).mode & 0o777, 0o700);

  const [host] = await cs.hosts.list();
  t.is(host?.spiffeId, enrolled.spiffeId);
  t.deepEqual(host?.labels, { site: 'lab' });
  t.deepEqual(host?.facts, FACTS);

  const keyBefore = await readFile(identityFiles.key(stateDir), 'utf8');
  const renewed = await renewHost({ stateDir, hostFacts: { ...FACTS, agentVersion: '0.2.0' } });
  t.not(await readFile(identityFiles.key(stateDir), 'utf8'), keyBefore, 'each renewal brings a new key');
  t.is((await stat(identityFiles.key(stateDir))).mode & 0o777, 0o600);
  t.deepEqual((await filesUnder(stateDir)).sort(), [
    'identity/bundle.pem',
    'identity/identity.json',
    'identity/svid.key',
    'identity/svid.pem',
  ]);
  t.true(renewed.expiresAt >= enrolled.expiresAt);
  const after = await cs.hosts.get(enrolled.hostId);
  t.is(after?.facts.agentVersion, '0.2.0');
  t.not(after?.svidSerial, host?.svidSerial);
  t.is((await readIdentityState(stateDir)).state, 'enrolled');
});

test('R2: a reused token is refused with "has already been used"; the first host is unaffected', async (t) => {
  const cs = await controlServer(t);
  const first = await tempDir(t);
  const second = await tempDir(t);
  const token = await cs.token();
  await enrollHost({ token, stateDir: first, hostFacts: FACTS });
  const e = await t.throwsAsync(
    enrollHost({ token, stateDir: second, hostFacts: { ...FACTS, hostname: 'db-2' } }),
    {
      instanceOf: AgentError,
    },
  );
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /^token [0-9a-f]{16} has already been used \(its one use taken, last at \d{4}-.*Z\)/);
  t.is((await readIdentityState(first)).state, 'enrolled');
  t.deepEqual(await filesUnder(second), []);
  t.is((await readIdentityState(second)).state, 'not-enrolled');
  t.is((await cs.hosts.list()).length, 1);
});

test('R1: an expired token is refused with its expiry, leaves no key or SVID, and stays burned', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const token = await cs.token({ ttlMs: 60_000 });
  await cs.tokenClock.advance(61_000);
  const e = await t.throwsAsync(enrollHost({ token, stateDir, hostFacts: FACTS }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /expired at \d{4}-.*Z; create a new one with `nsm-agent token create`/);
  t.deepEqual(await filesUnder(stateDir), []);
  t.deepEqual(
    (await cs.tokens.list()).map((i) => [i.state, i.usesLeft]),
    [['expired', 0]],
    'burned',
  );
  await t.throwsAsync(enrollHost({ token, stateDir, hostFacts: FACTS }), {
    message: /expired at \d{4}-/,
  });
});

test('R3: a server whose CA does not match the pin is refused, naming both pins; nothing sent or written', async (t) => {
  const cs = await controlServer(t);
  const other = await initCa({ trustDomain: TD, dataDir: await tempDir(t, 'nsm-ca2-') });
  const stateDir = await tempDir(t);
  // A token for this server's URL but pinning another mesh's CA: as if a machine in the middle answered.
  const token = await cs.token({ caPin: other.ca.pin });
  const e = await t.throwsAsync(enrollHost({ token, stateDir, hostFacts: FACTS }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
  t.true(
    e.message.includes(`does not hold the mesh CA the token pins (${formatPin(other.ca.pin)})`),
    e.message,
  );
  t.true(e.message.includes(formatPin(cs.pki.ca.pin)), 'names what the server presented');
  t.regex(e.message, /nothing was sent/);
  t.deepEqual(await filesUnder(stateDir), []);
  t.is((await cs.tokens.list())[0]?.usesLeft, 1, 'the token never reached the server');
});

/** Serves the enrolment service with a server certificate chain of the test's choosing. */
async function impostor(
  t: Parameters<typeof controlServer>[0],
  real: ServerPki,
  leaf: { certPem: string; keyPem: string },
  bundlePem: string,
): Promise<Awaited<ReturnType<typeof controlServer>>> {
  const pki: ServerPki = {
    ...real,
    ca: { ...real.ca, bundlePem },
    server: { ...real.server, keyPem: leaf.keyPem, certPem: leaf.certPem },
    serverTlsChainPem: leaf.certPem + real.ca.certPem,
  };
  return controlServer(t, { credentials: () => enrolmentServerCredentials(pki) });
}

test('R3: an impostor that sends the real CA certificate next to its own leaf is refused by the pin check', async (t) => {
  const real = await controlServer(t);
  const fakeCa = await createTestCa(TD);
  const fake = await impostor(
    t,
    real.pki,
    await issueTestSvid(fakeCa, `spiffe://${TD}/server`),
    fakeCa.certPem,
  );
  const stateDir = await tempDir(t);
  const { token } = await real.tokens.create({ serverUrl: fake.url, caPin: real.pki.ca.pin });
  // Node links a chain by issuer, so a CA that did not issue the leaf is not part of the chain.
  await t.throwsAsync(enrollHost({ token, stateDir, hostFacts: FACTS }), {
    message: /does not hold the mesh CA/,
  });
  t.deepEqual(await filesUnder(stateDir), []);
});

test('R3: an impostor whose leaf names the real CA as issuer passes the pin probe but not the verified handshake', async (t) => {
  const real = await controlServer(t);
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const forger = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const leafKeys = await generateEcKeyPair();
  const realCa = new x509.X509Certificate(real.pki.ca.certDer);
  const forged = await x509.X509CertificateGenerator.create({
    subject: 'O=nsm-agent',
    issuer: realCa.subject,
    publicKey: leafKeys.spki,
    signingKey: forger.privateKey,
    signingAlgorithm: alg,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.AuthorityKeyIdentifierExtension.create(real.pki.ca.keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${TD}/server` }]),
    ],
  });
  const fake = await impostor(
    t,
    real.pki,
    { certPem: forged.toString('pem') + '\n', keyPem: leafKeys.privateKeyPem },
    real.pki.ca.bundlePem,
  );
  const stateDir = await tempDir(t);
  const { token } = await real.tokens.create({ serverUrl: fake.url, caPin: real.pki.ca.pin });
  const e = await t.throwsAsync(enrollHost({ token, stateDir, hostFacts: FACTS, timeoutMs: 2000 }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /no verified TLS connection .* pinned CA/);
  t.deepEqual(await filesUnder(stateDir), []);
  t.deepEqual(await fake.hosts.list(), []);
  t.is((await real.tokens.list())[0]?.usesLeft, 1);
});

for (const crashAt of ['key-persisted', 'svid-received'] as const) {
  test(`R4: a crash at ${crashAt} leaves "re-enrolment required", and a new token enrols the host again`, async (t) => {
    const cs = await controlServer(t);
    const stateDir = await tempDir(t);
    const token = await cs.token();
    const crash = new Error('simulated crash');
    await t.throwsAsync(
      enrollHost({
        token,
        stateDir,
        hostFacts: FACTS,
        onStep: (s) => {
          if (s === crashAt) throw crash;
        },
      }),
      { is: crash },
    );
    t.deepEqual(
      await filesUnder(stateDir),
      ['identity/svid.key'],
      'the key was persisted before the CSR left',
    );
    const state = await readIdentityState(stateDir);
    t.is(state.state, 're-enrolment-required');
    if (state.state === 're-enrolment-required') {
      t.regex(state.reason, /enrolment was interrupted.*enroll --token/);
    }
    const loaded = await loadAgentIdentity(stateDir);
    t.is(loaded.identity, undefined);
    const again = await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
    t.is((await readIdentityState(stateDir)).state, 'enrolled');
    t.truthy(again.spiffeId);
  });
}

test('enrolling an already enrolled host needs replace', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const first = await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
  await t.throwsAsync(enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS }), {
    message: new RegExp(`already enrolled as ${first.spiffeId}.*--replace`),
  });
  const second = await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS, replace: true });
  t.not(second.spiffeId, first.spiffeId);
});

async function csrWith(
  keys: webcrypto.CryptoKeyPair,
  alg: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams,
  extensions: x509.Extension[] = [],
): Promise<Uint8Array> {
  x509.cryptoProvider.set(webcrypto);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=x',
    keys,
    signingAlgorithm: alg,
    extensions,
  });
  return new Uint8Array(csr.rawData);
}

test('R7: malformed CSRs get INVALID_ARGUMENT naming the rule, and do not burn the token', async (t) => {
  const cs = await controlServer(t);
  const conn = dial(cs.url, {
    credentials: clientCredentials({
      bundlePem: cs.pki.ca.bundlePem,
      expectedServerId: `spiffe://${TD}/server`,
    }),
  });
  t.teardown(() => conn.close());
  const enrolment = conn.client(EnrolmentService);
  const token = await cs.token();

  const rsaAlg = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  const rsa = await csrWith(await webcrypto.subtle.generateKey(rsaAlg, true, ['sign', 'verify']), rsaAlg);
  const p384Alg = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  const p384 = await csrWith(await webcrypto.subtle.generateKey(p384Alg, true, ['sign', 'verify']), p384Alg);
  const p256Alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const p256Keys = await webcrypto.subtle.generateKey(p256Alg, true, ['sign', 'verify']);
  const withSan = await csrWith(p256Keys, p256Alg, [
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${TD}/server` }]),
  ]);
  const good = await createAgentCsr(await generateEcKeyPair());
  const badSig = new Uint8Array(good);
  badSig[badSig.length - 2] = (badSig[badSig.length - 2] ?? 0) ^ 0x01;

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(), /CSR refused: it is empty/],
    ['garbage', new Uint8Array([1, 2, 3, 4]), /not a DER PKCS#10/],
    ['oversized', new Uint8Array(20_000), /more than the 16384 allowed/],
    ['RSA', rsa, /its key is RSA 2048, but SVIDs of this mesh need an EC P-256 key/],
    ['P-384', p384, /its key is EC P-384/],
    ['extra SAN', withSan, /requests subject alternative names \(url spiffe:\/\/mesh\.test\/server\)/],
    ['bad signature', badSig, /signature does not verify/],
  ];
  for (const [name, csrDer, re] of cases) {
    const e = await t.throwsAsync(
      enrolment.enrol({ token, csrDer, host: {} }),
      { instanceOf: AgentError },
      name,
    );
    t.is(e.code, 'INVALID_ARGUMENT', name);
    t.regex(e.message, re, name);
  }
  t.is((await cs.tokens.list())[0]?.usesLeft, 1, 'malformed requests do not burn the token');
  const missing = await t.throwsAsync(enrolment.enrol({ token: '', csrDer: good }), {
    instanceOf: AgentError,
  });
  t.regex(missing.message, /carries no token/);
  const junk = await t.throwsAsync(enrolment.enrol({ token: 'hello', csrDer: good }), {
    instanceOf: AgentError,
  });
  t.is(junk.code, 'INVALID_ARGUMENT');
  t.regex(junk.message, /not a usable enrolment token.*nsmagent1_/);
});

test('R8: a revoked host gets PERMISSION_DENIED on renewal, and its state says re-enrolment required', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const enrolled = await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
  await cs.hosts.revoke(enrolled.hostId);
  const e = await t.throwsAsync(renewHost({ stateDir }), { instanceOf: AgentError });
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(e.message, /was revoked at .*enrolled again with a new token/);
  t.is((await filesUnder(stateDir)).length, 5, 'identity kept, plus revoked.json');
  const state = await readIdentityState(stateDir);
  t.is(state.state, 're-enrolment-required');
  if (state.state === 're-enrolment-required') t.regex(state.reason, /revoked this host .*enroll --token/);
  await t.throwsAsync(renewHost({ stateDir }), { message: /cannot renew: .*revoked/ });
  // Enrolling again with a new token clears it.
  await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS, replace: true });
  t.is((await readIdentityState(stateDir)).state, 'enrolled');
});

test('Renew without a client certificate is UNAUTHENTICATED; with a tool identity it is PERMISSION_DENIED', async (t) => {
  const cs = await controlServer(t);
  const anonymous = dial(cs.url, {
    credentials: clientCredentials({
      bundlePem: cs.pki.ca.bundlePem,
      expectedServerId: `spiffe://${TD}/server`,
    }),
  });
  t.teardown(() => anonymous.close());
  const csrDer = await createAgentCsr(await generateEcKeyPair());
  const e = await t.throwsAsync(anonymous.client(EnrolmentService).renew({ csrDer }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /Renew needs the host’s current SVID/);

  const outDir = await tempDir(t);
  const tool = await issueToolIdentity({ ca: cs.pki.ca, spiffeId: `spiffe://${TD}/tool/grpcurl`, outDir });
  const asTool = dial(cs.url, {
    credentials: clientCredentials({
      bundlePem: await readFile(tool.bundlePath, 'utf8'),
      certChainPem: await readFile(tool.certPath, 'utf8'),
      keyPem: await readFile(tool.keyPath, 'utf8'),
      expectedServerId: `spiffe://${TD}/server`,
    }),
  });
  t.teardown(() => asTool.close());
  const denied = await t.throwsAsync(asTool.client(EnrolmentService).renew({ csrDer }), {
    instanceOf: AgentError,
  });
  t.is(denied.code, 'PERMISSION_DENIED');
  t.regex(denied.message, /spiffe:\/\/mesh\.test\/tool\/grpcurl is not an enrolled host identity/);
});

test('grpc-js createSsl(…, checkClientCertificate=false) never asks for a client certificate: Renew cannot see the host', async (t) => {
  // Why enrolmentServerCredentials does not use api/grpc serverCredentials({ requireClientCert: false }).
  const cs = await controlServer(t, {
    credentials: (pki) =>
      serverCredentials({
        bundlePem: pki.ca.bundlePem,
        certChainPem: pki.serverTlsChainPem,
        keyPem: pki.server.keyPem,
        requireClientCert: false,
      }),
  });
  const stateDir = await tempDir(t);
  await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
  const e = await t.throwsAsync(renewHost({ stateDir }), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED', 'the host presented its SVID, but the server never requested it');
});

test('the server logs enrolments by token id and host, never the token, its secret or a key', async (t) => {
  const raw: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  const cs = await controlServer(t, { log });
  const token = await cs.token();
  const { secret, id } = parseToken(token);
  await enrollHost({ token, stateDir: await tempDir(t), hostFacts: FACTS, log });
  await t.throwsAsync(enrollHost({ token, stateDir: await tempDir(t), hostFacts: FACTS, log }));
  const wrong = formatToken({ ...parseToken(await cs.token()), secret: new Uint8Array(32) });
  await t.throwsAsync(enrollHost({ token: wrong, stateDir: await tempDir(t), hostFacts: FACTS, log }));
  const text = raw.join('');
  t.true(text.includes(id), 'token ids are logged');
  t.true(text.includes('host enrolled'));
  t.true(text.includes('wrong secret'));
  for (const needle of [
    token,
    token.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + 40),
    Buffer.from(secret).toString('hex'),
    Buffer.from(secret).toString('base64url'),
    'PRIVATE KEY',
  ]) {
    t.false(text.includes(needle), needle.slice(0, 20));
  }
});

test('a client certificate from another CA counts as no identity on the enrolment listener', async (t) => {
  const cs = await controlServer(t);
  const foreignCa = await createTestCa('other.test');
  const foreign = await issueTestSvid(foreignCa, `spiffe://other.test/agent/x`);
  const conn = dial(cs.url, {
    credentials: clientCredentials({
      bundlePem: cs.pki.ca.bundlePem,
      certChainPem: foreign.chainPem,
      keyPem: foreign.keyPem,
      expectedServerId: `spiffe://${TD}/server`,
    }),
  });
  t.teardown(() => conn.close());
  const csrDer = await createAgentCsr(await generateEcKeyPair());
  const e = await t.throwsAsync(conn.client(EnrolmentService).renew({ csrDer }), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED');
  // …while Enrol still works for it: the token, not the certificate, authenticates enrolment.
  const res = await conn.client(EnrolmentService).enrol({ token: await cs.token(), csrDer, host: {} });
  t.regex(res.spiffeId, /^spiffe:\/\/mesh\.test\/agent\//);
});

test('enrolled SVIDs pass api/grpc mTLS with client certs required and an authorizePeer check', async (t) => {
  const first = await controlServer(t);
  const stateDir = await tempDir(t);
  const enrolled = await enrollHost({ token: await first.token(), stateDir, hostFacts: FACTS });
  const seen: string[] = [];
  // The same CA and host records behind a strict mTLS listener, as the registry will be served.
  const strict = await startServer({
    listen: [
      {
        url: 'tcp://127.0.0.1:0',
        credentials: serverCredentials({
          bundlePem: first.pki.ca.bundlePem,
          certChainPem: first.pki.server.certPem,
          keyPem: first.pki.server.keyPem,
          requireClientCert: true,
          authorizePeer: (id) => {
            seen.push(id);
            return id.startsWith(`spiffe://${TD}/agent/`);
          },
        }),
      },
    ],
    services: [enrolmentService({ ca: first.pki.ca, tokens: first.tokens, hosts: first.hosts })],
    log: silentLogger(),
  });
  t.teardown(() => strict.close({ graceMs: 100 }));
  const metaPath = identityFiles.meta(stateDir);
  const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { serverUrl: string };
  await writeFile(metaPath, JSON.stringify({ ...meta, serverUrl: strict.address }));
  await renewHost({ stateDir });
  t.deepEqual(seen, [enrolled.spiffeId]);
});

test('a renewal interrupted between svid.pem and the key swap leaves a usable identity, finished by the next renewal', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
  const crash = new Error('simulated crash');
  await t.throwsAsync(
    renewHost({
      stateDir,
      onStep: () => {
        throw crash;
      },
    }),
    { is: crash },
  );
  t.true((await filesUnder(stateDir)).includes('identity/svid.next.key'));
  t.is((await readIdentityState(stateDir)).state, 'enrolled');
  const loaded = await loadAgentIdentity(stateDir);
  t.true(loaded.identity?.keyIsNext);
  t.is(loaded.identity?.keyPem, await readFile(identityFiles.nextKey(stateDir), 'utf8'));
  await renewHost({ stateDir });
  t.false((await filesUnder(stateDir)).includes('identity/svid.next.key'));
  t.false((await loadAgentIdentity(stateDir)).identity?.keyIsNext);
});

test('a refused --replace leaves the host on its old identity', async (t) => {
  const cs = await controlServer(t);
  const stateDir = await tempDir(t);
  const first = await enrollHost({ token: await cs.token(), stateDir, hostFacts: FACTS });
  const keyBefore = await readFile(identityFiles.key(stateDir), 'utf8');
  const used = await cs.token();
  await enrollHost({ token: used, stateDir: await tempDir(t), hostFacts: FACTS });
  await t.throwsAsync(enrollHost({ token: used, stateDir, hostFacts: FACTS, replace: true }), {
    message: /has already been used/,
  });
  const state = await readIdentityState(stateDir);
  t.is(state.state, 'enrolled');
  if (state.state === 'enrolled') t.is(state.spiffeId, first.spiffeId);
  t.is(await readFile(identityFiles.key(stateDir), 'utf8'), keyBefore);
  t.false((await filesUnder(stateDir)).includes('identity/svid.next.key'));
});
