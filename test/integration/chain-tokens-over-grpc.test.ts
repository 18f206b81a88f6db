// The token elements over real gRPC + mTLS: an NSC chain [updatepath, begin, refresh, updatetoken,
// authorize, connect] calls an nsmgr chain [updatepath, begin, updatetoken, authorize, timeout,
// endpoint]; every hop signs its segment with its SVID key and checks the other's.
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { NetworkServiceRequestSchema, NetworkServiceService, create } from '../../src/api/index.js';
import { clientCredentials, dial, serverCredentials, startServer } from '../../src/api/grpc/index.js';
import { createTokenSigner, decodeToken, verifyTokenSignature } from '../../src/api/token/index.js';
import { authorizeClient, authorizeServer } from '../../src/chain/authorize/index.js';
import { beginClient, beginServer } from '../../src/chain/begin/index.js';
import { buildChain } from '../../src/chain/core/chain.js';
import type { Chain } from '../../src/chain/core/chain.js';
import { ChainContext } from '../../src/chain/core/context.js';
import { connectClient, networkServiceOf } from '../../src/chain/edge/index.js';
import type { ChainElement } from '../../src/chain/core/element.js';
import { refreshClient } from '../../src/chain/refresh/index.js';
import { timeoutServer } from '../../src/chain/timeout/index.js';
import { updateTokenClient, updateTokenServer } from '../../src/chain/updatetoken/index.js';
import { updatePathClient, updatePathServer } from '../../src/chain/updatepath/index.js';
import { AgentError } from '../../src/errors/agent-error.js';
import type { Clock } from '../../src/host/clock.js';
import { systemClock } from '../../src/host/clock.js';
import { systemRandom } from '../../src/host/random.js';
import { silentLogger } from '../../src/log/logger.js';
import { createTestCa, issueSvid } from '../helpers/pki.js';
import type { TestCa, TestSvid } from '../helpers/pki.js';

const MGR_ID = 'spiffe://mesh.test/agent/host-a';
const NSC_ID = 'spiffe://mesh.test/agent/host-b';

interface Seen {
  requests: number;
  closes: number[];
}

function endpoint(seen: Seen): ChainElement {
  return {
    name: 'endpoint',
    request(_ctx, request) {
      seen.requests++;
      return Promise.resolve(request.connection!);
    },
    close() {
      seen.closes.push(Date.now());
      return Promise.resolve();
    },
  };
}

async function startNsmgr(ca: TestCa, svid: TestSvid, seen: Seen) {
  const signer = createTokenSigner({
    spiffeId: MGR_ID,
    certificatePem: svid.certPem,
    privateKeyPem: svid.keyPem,
    clock: systemClock,
  });
  const chain: Chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    // A short event limit: timeout closes at expiry minus what is left of it (upstream: the request deadline).
    beginServer({ eventTimeoutMs: 500 }),
    updateTokenServer({ signer }),
    authorizeServer(),
    timeoutServer(),
    endpoint(seen),
  ]);
  return startServer({
    listen: [
      {
        url: 'tcp://127.0.0.1:0',
        credentials: serverCredentials({
          bundlePem: ca.certPem,
          certChainPem: svid.chainPem,
          keyPem: svid.keyPem,
          requireClientCert: true,
        }),
      },
    ],
    log: silentLogger(),
    services: [networkServiceOf(chain, { log: silentLogger() })],
  });
}

interface NscOptions {
  /** Whose key signs the per-call token (default: the TLS identity's). */
  readonly tokenSvid?: TestSvid;
  readonly clock?: Clock;
  readonly maxLifetimeMs?: number;
  readonly refresh?: boolean;
}

function nsc(url: string, ca: TestCa, tlsSvid: TestSvid, serverCert: X509Certificate, o: NscOptions = {}) {
  const connection = dial(url, {
    credentials: clientCredentials({
      bundlePem: ca.certPem,
      certChainPem: tlsSvid.chainPem,
      keyPem: tlsSvid.keyPem,
      expectedServerId: MGR_ID,
    }),
  });
  const remote = connection.client(NetworkServiceService);
  const connect = connectClient(remote, { timeoutMs: 5_000 });
  const tokenSvid = o.tokenSvid ?? tlsSvid;
  const signer = createTokenSigner({
    spiffeId: tokenSvid.spiffeId,
    certificatePem: tokenSvid.certPem,
    privateKeyPem: tokenSvid.keyPem,
    clock: o.clock ?? systemClock,
    ...(o.maxLifetimeMs !== undefined ? { maxLifetimeMs: o.maxLifetimeMs } : {}),
  });
  const chain = buildChain('nsc', [
    updatePathClient('nsc'),
    beginClient(),
    ...(o.refresh === false ? [] : [refreshClient()]),
    updateTokenClient({ signer, server: { spiffeId: MGR_ID } }),
    // The server's certificate as this test dialled it; the daemon's connect takes it from the TLS session.
    authorizeClient({ serverCertificate: () => serverCert }),
    connect,
  ]);
  return { chain, connection };
}

const ctx = (): ChainContext =>
  new ChainContext({ log: silentLogger(), clock: systemClock, random: systemRandom });
const request = (id: string) =>
  create(NetworkServiceRequestSchema, { connection: { id, networkService: 'web' } });

async function mesh() {
  const ca = await createTestCa('mesh.test');
  const [mgr, client, other] = await Promise.all([
    issueSvid(ca, MGR_ID),
    issueSvid(ca, NSC_ID),
    issueSvid(ca, 'spiffe://mesh.test/agent/other'),
  ]);
  return { ca, mgr, client, other, mgrCert: new X509Certificate(mgr.certPem) };
}

test.serial(
  'a good request comes back with both tokens verified; refresh keeps it past its first token',
  async (t) => {
    const m = await mesh();
    const seen: Seen = { requests: 0, closes: [] };
    const server = await startNsmgr(m.ca, m.mgr, seen);
    t.teardown(() => server.close({ graceMs: 100 }));
    const url = `tcp://127.0.0.1:${server.port ?? 0}`;
    // 2 s client tokens: refresh every ~0.4 s (20 %), the server would close at ~1.5 s without it.
    const { chain, connection } = nsc(url, m.ca, m.client, m.mgrCert, { maxLifetimeMs: 2_000 });
    t.teardown(() => connection.close());

    const conn = await chain.request(ctx(), request('c-1'));
    const [mine, theirs] = conn.path!.pathSegments;
    t.is(conn.path?.pathSegments.length, 2);
    t.true(verifyTokenSignature(mine!.token, new X509Certificate(m.client.certPem)), 'our segment: our key');
    t.true(verifyTokenSignature(theirs!.token, m.mgrCert), 'the nsmgr segment: its key');
    t.deepEqual(decodeToken(mine!.token).claims.aud, [MGR_ID]);
    t.deepEqual(decodeToken(theirs!.token).claims.aud, [NSC_ID]);

    await new Promise((r) => setTimeout(r, 3_000));
    t.true(seen.requests >= 4, `refreshed (${seen.requests} requests in 3 s)`);
    t.deepEqual(seen.closes, [], 'the server did not close a refreshed connection');
    await chain.close(ctx(), conn);
    t.is(seen.closes.length, 1);
  },
);

test.serial('a token signed with another key, or expired, is refused naming the policy', async (t) => {
  const m = await mesh();
  const seen: Seen = { requests: 0, closes: [] };
  const server = await startNsmgr(m.ca, m.mgr, seen);
  t.teardown(() => server.close({ graceMs: 100 }));
  const url = `tcp://127.0.0.1:${server.port ?? 0}`;

  const forged = nsc(url, m.ca, m.client, m.mgrCert, { tokenSvid: m.other });
  t.teardown(() => forged.connection.close());
  const e1 = await t.throwsAsync(forged.chain.request(ctx(), request('c-forged')));
  t.true(AgentError.is(e1, 'PERMISSION_DENIED'), e1.message);
  t.regex(
    e1.message,
    /refused \(policy prev_token_signed\): the caller’s token is not signed by the key of the certificate it connected with/,
  );

  const past: Clock = { ...systemClock, now: () => Date.now() - 20 * 60_000 };
  const stale = nsc(url, m.ca, m.client, m.mgrCert, { clock: past });
  t.teardown(() => stale.connection.close());
  const e2 = await t.throwsAsync(stale.chain.request(ctx(), request('c-stale')));
  t.true(AgentError.is(e2, 'UNAUTHENTICATED'), e2.message);
  t.regex(e2.message, /refused \(policy tokens_expired\): the caller’s nsm-client-token has expired/);
  t.is(seen.requests, 0, 'neither reached the endpoint');
});

test.serial('when the client stops refreshing, the server closes the connection at expiry', async (t) => {
  const m = await mesh();
  const seen: Seen = { requests: 0, closes: [] };
  const server = await startNsmgr(m.ca, m.mgr, seen);
  t.teardown(() => server.close({ graceMs: 100 }));
  const url = `tcp://127.0.0.1:${server.port ?? 0}`;
  const { chain, connection } = nsc(url, m.ca, m.client, m.mgrCert, { maxLifetimeMs: 2_000, refresh: false });
  t.teardown(() => connection.close());

  const started = Date.now();
  const conn = await chain.request(ctx(), request('c-quiet'));
  const expiresAt = decodeToken(conn.path!.pathSegments[0]!.token).claims.exp! * 1000;
  for (let i = 0; i < 100 && seen.closes.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(seen.closes.length, 1, 'closed by the server');
  const closedAt = seen.closes[0]!;
  // Expiry minus the 0.5 s event limit; exp has whole seconds, so allow the fraction it drops.
  t.true(closedAt >= started + 500, `not closed at once (${closedAt - started} ms)`);
  t.true(closedAt <= expiresAt + 1_000, `closed by the token's expiry (${closedAt - expiresAt} ms after)`);
  t.is(seen.requests, 1);
});
