// Registry authorization over real mTLS: upstream's default registry policies (tokens valid,
// unexpired, chained, caller's token signed by its TLS certificate; first registrant owns a name),
// Find with mTLS only, TLS refusal of another trust domain, and no secrets in the log.
import test from 'ava';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import {
  NetworkServiceEndpointRegistryService,
  NetworkServiceRegistryService,
} from '../../../src/api/index.js';
import { clientCredentials, dial } from '../../../src/api/grpc/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { ALLOW_ANY } from '../../../src/registry/index.js';
import { MemoryStore } from '../../../src/store/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';
import { AGENT_A, RegistryClient, SERVER_ID, all, capturingLogger, mesh, startRegistry } from './fixtures.js';

const NSE = { name: 'nse-auth', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.1:5001' };

async function setup(t: Parameters<typeof startRegistry>[0]): Promise<{
  a: RegistryClient;
  b: RegistryClient;
  clock: FakeClock;
  url: string;
  logText: () => string;
}> {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { log, text } = capturingLogger();
  const { url } = await startRegistry(t, { clock, log });
  return {
    a: new RegistryClient(t, url, m.a, m.ca, clock),
    b: new RegistryClient(t, url, m.b, m.ca, clock),
    clock,
    url,
    logText: text,
  };
}

async function refused(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (e: unknown) {
    return e as ServiceError;
  }
  throw new Error('the call was not refused');
}

test('an upstream-style caller (token + path) passes; Find needs only mTLS', async (t) => {
  const { a, b } = await setup(t);
  await a.registerNse(NSE);
  // Find through the typed client sends no token and no path at all.
  t.is((await all(b.nse.find({ networkServiceEndpoint: { name: NSE.name } }))).length, 1);
});

test('Register without nsm-client-token is refused with UNAUTHENTICATED saying what is missing', async (t) => {
  const { a } = await setup(t);
  const e = await refused(a.registerNse(NSE, { token: false }));
  t.is(e.code, GrpcStatus.UNAUTHENTICATED);
  t.regex(e.details, /Register of network service endpoint "nse-auth" refused \(policy tokens_valid\)/);
  t.regex(e.details, /no nsm-client-token metadata/);
  t.regex(e.details, /send nsm-client-token \(an ES256 JWT/);
});

test('Register with neither token nor path says both are missing', async (t) => {
  const { a } = await setup(t);
  const e = await refused(a.registerNse(NSE, { token: false, path: false }));
  t.is(e.code, GrpcStatus.UNAUTHENTICATED);
  t.regex(e.details, /policy prev_token_signed/);
  t.regex(e.details, /no "path" metadata and no usable nsm-client-token metadata/);
});

test('Register with a token but no path metadata is refused as upstream (prev_token_signed), naming "path"', async (t) => {
  const { a } = await setup(t);
  const e = await refused(a.registerNse(NSE, { path: false }));
  t.is(e.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(e.details, /policy prev_token_signed.*no "path" metadata/);
});

test('a token signed by another identity’s key is refused (prev_token_signed)', async (t) => {
  const { a, b } = await setup(t);
  const stolen = b.signer.mint({ spiffeId: SERVER_ID }).token;
  const e = await refused(a.registerNse(NSE, { token: stolen }));
  t.is(e.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(
    e.details,
    /policy prev_token_signed\): the caller’s token is not signed by the key of the certificate/,
  );
});

test('a token for another audience is refused (tokens_chained)', async (t) => {
  const { a } = await setup(t);
  const e = await refused(a.registerNse(NSE, { audience: 'spiffe://mesh.test/someone-else' }));
  t.is(e.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(e.details, /policy tokens_chained/);
  t.regex(e.details, /lacks spiffe:\/\/mesh.test\/server/);
});

test('an expired token is refused (tokens_expired); a malformed one (tokens_valid)', async (t) => {
  const m = await mesh();
  const { a, url } = await setup(t);
  const past = new RegistryClient(t, url, m.a, m.ca, new FakeClock(Date.now() - 3_600_000));
  const e1 = await refused(past.registerNse(NSE, { token: past.signer.mint({ spiffeId: SERVER_ID }).token }));
  t.is(e1.code, GrpcStatus.UNAUTHENTICATED);
  t.regex(e1.details, /policy tokens_expired\): the caller’s nsm-client-token has expired/);
  const e2 = await refused(a.registerNse(NSE, { token: 'not.a-jwt' }));
  t.is(e2.code, GrpcStatus.UNAUTHENTICATED);
  t.regex(e2.details, /policy tokens_valid/);
});

test('the first registrant owns the name: others get PERMISSION_DENIED naming the owner, even after expiry', async (t) => {
  const { a, b, clock } = await setup(t);
  await a.registerNse(NSE);
  const e1 = await refused(b.registerNse({ ...NSE, url: 'tcp://10.6.6.6:1' }));
  t.is(e1.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(
    e1.details,
    /policy client_allowed\): the name is owned by spiffe:\/\/mesh.test\/agent\/host-a, the first registrant; the caller is spiffe:\/\/mesh.test\/agent\/host-b/,
  );
  t.regex(e1.details, /choose another name, or have the owner unregister it first/);
  const e2 = await refused(b.unregisterNse({ name: NSE.name }));
  t.is(e2.code, GrpcStatus.PERMISSION_DENIED);
  const [kept] = await all(a.nse.find({ networkServiceEndpoint: { name: NSE.name } }));
  t.is(kept?.networkServiceEndpoint?.url, NSE.url, 'the record is untouched');

  await clock.advance(61_000);
  t.deepEqual(await all(a.nse.find({ networkServiceEndpoint: { name: NSE.name } })), [], 'expired');
  t.is(
    (await refused(b.registerNse(NSE))).code,
    GrpcStatus.PERMISSION_DENIED,
    'the name outlives the record',
  );
  await a.registerNse(NSE);
  await a.unregisterNse({ name: NSE.name });
  const { response } = await b.registerNse(NSE);
  t.deepEqual(
    response.pathIds[0],
    'spiffe://mesh.test/agent/host-b',
    'after the owner unregistered, the name is free',
  );
});

test('network service names are owned the same way', async (t) => {
  const { a, b } = await setup(t);
  await a.registerNs({ name: 'db-net' });
  const e = await refused(b.registerNs({ name: 'db-net', payload: 'ETHERNET' }));
  t.is(e.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(e.details, /Register of network service "db-net" refused \(policy client_allowed\)/);
  await a.registerNs({ name: 'db-net', payload: 'ETHERNET' });
});

test('ALLOW_ANY (upstream authorize.Any) lets a caller without token or path register', async (t) => {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { url } = await startRegistry(t, { clock, policies: ALLOW_ANY, store: new MemoryStore({ clock }) });
  const a = new RegistryClient(t, url, m.a, m.ca, clock);
  const { response, path } = await a.registerNse(NSE, { token: false, path: false });
  t.deepEqual(response.pathIds, ['', SERVER_ID], 'no caller token: its path id is empty, as upstream');
  t.is(path, undefined, 'no path header without path metadata');
});

test('a client certificate from another trust domain is refused by TLS; the server keeps serving', async (t) => {
  const m = await mesh();
  const { a, url } = await setup(t);
  const otherCa = await createTestCa('other.test');
  const intruder = await issueSvid(otherCa, 'spiffe://other.test/agent/x');
  // The intruder trusts our CA (so it reaches the handshake) but presents a certificate we do not trust.
  const c = new RegistryClient(t, url, intruder, m.ca, new FakeClock(Date.now()));
  const e = await t.throwsAsync(all(c.nse.find({})), { instanceOf: AgentError });
  t.is(e.code, 'UNAVAILABLE');
  await a.registerNse(NSE);
  t.is((await all(a.nse.find({}))).length, 1);
});

test('nothing secret is logged: refusals and registrations log who and why, never the token', async (t) => {
  const { a, b, logText } = await setup(t);
  const tokens: string[] = [];
  const md = a.metadata();
  tokens.push(String(md.get('nsm-client-token')[0]));
  await a.registerNse(NSE);
  const stolen = b.signer.mint({ spiffeId: SERVER_ID }).token;
  tokens.push(stolen);
  await refused(a.registerNse(NSE, { token: stolen }));
  await refused(b.registerNse(NSE));
  const text = logText();
  t.regex(text, /network service endpoint registered/);
  t.regex(text, /registry call refused/);
  t.regex(text, /"policy":"client_allowed"/);
  t.true(text.includes(AGENT_A));
  for (const token of tokens) {
    for (const part of token.split('.')) t.false(text.includes(part), 'no token part in the log');
  }
  t.false(/eyJ[A-Za-z0-9_-]{10,}/.test(text), 'nothing JWT-shaped in the log');
});

test('registry calls that arrive without a client identity (TLS without client certs) are UNAUTHENTICATED', async (t) => {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { url } = await startRegistry(t, { clock, requireClientCert: false });
  const anonymous = dial(url, {
    credentials: clientCredentials({ bundlePem: m.ca.certPem, expectedServerId: SERVER_ID }),
  });
  t.teardown(() => anonymous.close());
  const e = await t.throwsAsync(all(anonymous.client(NetworkServiceEndpointRegistryService).find({})), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /Find needs a client certificate: an SVID of this mesh/);
  const e2 = await t.throwsAsync(anonymous.client(NetworkServiceRegistryService).register({ name: 'x' }), {
    instanceOf: AgentError,
  });
  t.is(e2.code, 'UNAUTHENTICATED');
});
