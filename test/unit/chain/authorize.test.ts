import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { X509Certificate } from 'node:crypto';
import type { Connection } from '../../../src/api/index.js';
import { PathSegmentSchema, create } from '../../../src/api/index.js';
import {
  CLIENT_TOKEN_EXPIRES_KEY,
  CLIENT_TOKEN_KEY,
  formatRfc3339Nano,
  mintToken,
} from '../../../src/api/token/index.js';
import {
  authorizeClient,
  authorizeServer,
  compileSpiffeIdPattern,
  serviceAllowedPolicy,
} from '../../../src/chain/authorize/index.js';
import { withIncomingMetadata } from '../../../src/chain/core/call-metadata.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainContext } from '../../../src/chain/core/context.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { updateTokenServer } from '../../../src/chain/updatetoken/index.js';
import { updatePathServer } from '../../../src/chain/updatepath/index.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { requestWith, testContext } from '../../helpers/chain.js';
import type { Identity } from './token-fixture.js';
import { MGR_ID, NSC_ID, OTHER_ID, identities, metadataOf } from './token-fixture.js';

interface Endpoint extends ChainElement {
  reached: number;
}
function endpoint(): Endpoint {
  const e: Endpoint = {
    name: 'endpoint',
    reached: 0,
    request(_ctx, r) {
      e.reached++;
      return Promise.resolve(r.connection!);
    },
    close: () => Promise.resolve(),
  };
  return e;
}

/** The nsmgr side: updatepath, updatetoken, authorize (+ extra), endpoint. */
function serverChain(mgr: Identity, clock: FakeClock, extra: Parameters<typeof authorizeServer>[0] = {}) {
  const end = endpoint();
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    updateTokenServer({ signer: mgr.signer(clock) }),
    authorizeServer(extra),
    end,
  ]);
  return { chain, end };
}

/** A call from `peer` (its TLS certificate) carrying `token` in metadata, if any. */
function callFrom(
  clock: FakeClock,
  peer: Identity,
  token?: { token: string; expiresAtMs: number },
): ChainContext {
  return withIncomingMetadata(
    testContext({ clock, peer: { spiffeId: peer.svid.spiffeId, certificate: peer.cert } }),
    metadataOf(
      token
        ? {
            [CLIENT_TOKEN_KEY]: token.token,
            [CLIENT_TOKEN_EXPIRES_KEY]: formatRfc3339Nano(token.expiresAtMs),
          }
        : {},
    ),
  );
}

async function refusal(t: ExecutionContext, p: Promise<unknown>): Promise<AgentError> {
  const e = await t.throwsAsync(p);
  if (!AgentError.is(e)) throw new Error(`expected an AgentError, got ${String(e)}`);
  return e;
}

const newRequest = () => requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1');

test('server: a good caller token passes all four policies and reaches the endpoint', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const { chain, end } = serverChain(ids.mgr, clock);
  const conn = await chain.request(
    callFrom(clock, ids.nsc, ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })),
    newRequest(),
  );
  t.is(end.reached, 1);
  t.is(conn.path?.pathSegments.length, 2);
});

test('server: each broken token is refused naming its policy, with the right code', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const { chain, end } = serverChain(ids.mgr, clock);
  const exp = clock.now() + 60_000;

  // No metadata at all: the caller's segment has no token → UNAUTHENTICATED, says to send it.
  let e = await refusal(t, chain.request(callFrom(clock, ids.nsc), newRequest()));
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(
    e.message,
    /^Request of connection "[^"]+" for network service "web" refused \(policy tokens_valid\): no usable nsm-client-token metadata \(the call carries no nsm-client-token metadata\)/,
  );
  t.regex(e.message, /put updatetoken in the client chain/);

  // Expired.
  const expired = {
    token: mintToken({
      privateKey: ids.nsc.svid.keyPem,
      subject: NSC_ID,
      audience: MGR_ID,
      expiresAtMs: clock.now() - 1_000,
    }),
    expiresAtMs: clock.now() - 1_000,
  };
  e = await refusal(t, chain.request(callFrom(clock, ids.nsc, expired), newRequest()));
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /\(policy tokens_expired\): the caller’s nsm-client-token has expired/);
  t.regex(e.message, /check that the clocks agree/);

  // Addressed to someone else.
  const wrongAud = {
    token: mintToken({
      privateKey: ids.nsc.svid.keyPem,
      subject: NSC_ID,
      audience: OTHER_ID,
      expiresAtMs: exp,
    }),
    expiresAtMs: exp,
  };
  e = await refusal(t, chain.request(callFrom(clock, ids.nsc, wrongAud), newRequest()));
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(
    e.message,
    /\(policy tokens_chained\): the token of path segment 0 is not addressed to the next hop/,
  );
  t.regex(e.message, /aud = \[the SPIFFE ID of the server you call\]/);

  // Signed with another key than the TLS certificate's.
  const forged = {
    token: mintToken({
      privateKey: ids.other.svid.keyPem,
      subject: NSC_ID,
      audience: MGR_ID,
      expiresAtMs: exp,
    }),
    expiresAtMs: exp,
  };
  e = await refusal(t, chain.request(callFrom(clock, ids.nsc, forged), newRequest()));
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(
    e.message,
    /\(policy prev_token_signed\): the caller’s token is not signed by the key of the certificate it connected with/,
  );
  t.is(e.details.policy, 'prev_token_signed');

  // Not a JWT.
  e = await refusal(
    t,
    chain.request(callFrom(clock, ids.nsc, { token: 'not-a-jwt', expiresAtMs: exp }), newRequest()),
  );
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /\(policy tokens_valid\): the caller’s nsm-client-token is not a JWT/);

  t.is(end.reached, 0, 'no refused request reached the endpoint');
});

test('server: the service policy hook refuses a requester outside the allow list, after the token policies', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const allowed = { web: ['spiffe://mesh.test/agent/nsc'], db: ['spiffe://mesh.test/team-a/*'] } as Record<
    string,
    string[]
  >;
  const { chain, end } = serverChain(ids.mgr, clock, { extra: [serviceAllowedPolicy((s) => allowed[s])] });
  await chain.request(
    callFrom(clock, ids.nsc, ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })),
    newRequest(),
  );
  t.is(end.reached, 1);

  const db = requestWith([{ name: 'nsc', id: 'c2' }], 0, 'c2', 'db');
  const e = await refusal(
    t,
    chain.request(callFrom(clock, ids.nsc, ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })), db),
  );
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(
    e.message,
    /network service "db" refused \(policy service_allowed\): spiffe:\/\/mesh\.test\/agent\/nsc is not in the service's allow list \[spiffe:\/\/mesh\.test\/team-a\/\*\]/,
  );
  t.regex(e.message, /ask the owner of "db" to allow your SPIFFE ID/);

  // A service without a list: anyone the token policies let through.
  const open = requestWith([{ name: 'nsc', id: 'c3' }], 0, 'c3', 'open');
  await chain.request(callFrom(clock, ids.nsc, ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })), open);
  t.is(end.reached, 2);
});

test('SPIFFE ID patterns: * stays within a segment, ** spans them, the trust domain is literal', (t) => {
  const one = compileSpiffeIdPattern('spiffe://mesh.test/agent/*');
  t.true(one.matches('spiffe://mesh.test/agent/host-a'));
  t.false(one.matches('spiffe://mesh.test/agent/host-a/x'));
  t.false(one.matches('spiffe://other.test/agent/host-a'));
  t.false(one.matches('spiffe://mesh.test/agentx/host-a'));
  const all = compileSpiffeIdPattern('spiffe://mesh.test/**');
  t.true(all.matches('spiffe://mesh.test/agent/host-a/x'));
  t.false(all.matches('spiffe://mesh.testx/agent'));
  const prefix = compileSpiffeIdPattern('spiffe://mesh.test/agent/web-*');
  t.true(prefix.matches('spiffe://mesh.test/agent/web-1'));
  t.false(prefix.matches('spiffe://mesh.test/agent/db-1'));
  const dots = compileSpiffeIdPattern('spiffe://mesh.test/a.b');
  t.false(dots.matches('spiffe://mesh.test/aXb'), 'a dot is literal');
  t.true(
    compileSpiffeIdPattern('spiffe://mesh.test/agent/host-a').matches('spiffe://mesh.test/agent/host-a'),
  );
  for (const bad of ['*', 'spiffe://*/agent', 'mesh.test/agent/*', '']) {
    const e = t.throws(() => compileSpiffeIdPattern(bad));
    t.regex(e.message, /is not a SPIFFE ID pattern: it must start with spiffe:\/\/<trust domain>/);
  }
});

/** The client side: a fake server that returns a path [nsc, nsmgr] with tokens as given. */
function clientChain(server: (conn: Connection) => void, serverCert: () => X509Certificate | undefined) {
  const closed: string[] = [];
  const connect: ChainElement = {
    name: 'connect',
    request(_ctx, r) {
      const conn = r.connection!;
      server(conn);
      return Promise.resolve(conn);
    },
    close(_ctx, conn) {
      closed.push(conn.id);
      return Promise.resolve();
    },
  };
  const updatetoken: ChainElement = {
    name: 'updatetoken',
    request: (c, r, n) => n.request(c, r),
    close: (c, x, n) => n.close(c, x),
  };
  const chain = buildChain('nsc', [
    updatePathServer('nsc'),
    updatetoken,
    authorizeClient({ serverCertificate: serverCert }),
    connect,
  ]);
  return { chain, closed };
}

test('client: the reply must carry a server segment signed by the certificate the server presented', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const exp = clock.now() + 60_000;
  const tokens = (serverKey: string) => (conn: Connection) => {
    const segs = conn.path!.pathSegments;
    segs[0]!.token = mintToken({
      privateKey: ids.nsc.svid.keyPem,
      subject: NSC_ID,
      audience: MGR_ID,
      expiresAtMs: exp,
    });
    segs.push(
      create(PathSegmentSchema, {
        name: 'nsmgr',
        id: 'm1',
        token: mintToken({ privateKey: serverKey, subject: MGR_ID, audience: NSC_ID, expiresAtMs: exp }),
      }),
    );
  };
  const good = clientChain(tokens(ids.mgr.svid.keyPem), () => ids.mgr.cert);
  const conn = await good.chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  t.is(conn.path?.pathSegments.length, 2);
  t.deepEqual(good.closed, []);

  const forged = clientChain(tokens(ids.other.svid.keyPem), () => ids.mgr.cert);
  const e = await refusal(t, forged.chain.request(testContext({ clock }), requestWith([], 0, 'c1')));
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(
    e.message,
    /^the reply to connection "c1" for network service "web" refused \(policy next_token_signed\): the server’s path segment token is not signed by the key of the certificate it presented/,
  );
  t.deepEqual(forged.closed, ['c1'], 'the refused connection is closed again');

  const noTls = clientChain(tokens(ids.mgr.svid.keyPem), () => undefined);
  const e2 = await refusal(t, noTls.chain.request(testContext({ clock }), requestWith([], 0, 'c1')));
  t.regex(e2.message, /\(policy next_token_signed\): there is no server certificate/);
  t.regex(e2.message, /over mTLS/);
});
