import { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import test from 'ava';
import { ChannelCredentials, Client, Metadata, ServerCredentials } from '@grpc/grpc-js';
import {
  checkServerSpiffeId,
  clientCredentials,
  deserializerFor,
  implement,
  serializerFor,
  serverCredentials,
} from '../../../src/api/grpc/index.js';
import type { AuthorizePeer, ServerTlsCredentials } from '../../../src/api/grpc/index.js';
import { ConnectionSchema } from '../../../src/api/gen/connection_pb.js';
import { NetworkService, NetworkServiceRequestSchema } from '../../../src/api/gen/networkservice_pb.js';
import { AgentError } from '../../../src/errors/index.js';
import { badSvids, createTestCa, issueSvid } from '../../helpers/pki.js';
import type { TestCa, TestSvid } from '../../helpers/pki.js';
import { connect, echoNetworkService, serve } from './fixtures.js';

const SERVER_ID = 'spiffe://mesh.test/server';
const AGENT_ID = 'spiffe://mesh.test/agent/host-1';

interface Mesh {
  readonly ca: TestCa;
  readonly server: TestSvid;
  readonly agent: TestSvid;
}

async function mesh(): Promise<Mesh> {
  const ca = await createTestCa('mesh.test');
  return { ca, server: await issueSvid(ca, SERVER_ID), agent: await issueSvid(ca, AGENT_ID) };
}

function tlsServer(m: Mesh, svid: TestSvid = m.server, authorizePeer?: AuthorizePeer): ServerTlsCredentials {
  return serverCredentials({
    bundlePem: m.ca.certPem,
    certChainPem: svid.chainPem,
    keyPem: svid.keyPem,
    requireClientCert: true,
    ...(authorizePeer ? { authorizePeer } : {}),
  });
}

/** Server credentials straight from grpc-js, for certificates serverCredentials() would refuse. */
function rawTlsServer(bundlePem: string, svid: TestSvid): ServerTlsCredentials {
  return {
    kind: 'tls',
    grpc: ServerCredentials.createSsl(
      Buffer.from(bundlePem),
      [{ cert_chain: Buffer.from(svid.chainPem), private_key: Buffer.from(svid.keyPem) }],
      true,
    ),
    requireClientCert: true,
    authorizePeer: undefined,
    spiffeId: svid.spiffeId,
  };
}

async function serveTls(t: Parameters<typeof serve>[0], credentials: ServerTlsCredentials): Promise<string> {
  const server = await serve(t, {
    listen: [{ url: 'tcp://127.0.0.1:0', credentials }],
    services: [echoNetworkService()],
  });
  return server.address;
}

test('mTLS between SVIDs of one CA works and the server sees the client’s SPIFFE ID', async (t) => {
  const m = await mesh();
  const url = await serveTls(t, tlsServer(m));
  const ns = connect(t, url, {
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: m.agent.chainPem,
      keyPem: m.agent.keyPem,
      expectedServerId: SERVER_ID,
    }),
  }).client(NetworkService);
  const conn = await ns.request({ connection: { id: 'tls-1' } });
  t.is(conn.labels.servedBy, AGENT_ID);
});

// Serial (ava runs serial tests first, alone): it counts calls of a TLSSocket method process-wide.
test.serial('a handler sees the peer’s certificate and can send response headers', async (t) => {
  const m = await mesh();
  // The certificate of a connection is read once, not on every call (grpc-js builds a JS object
  // with fingerprints each time). If this count breaks, grpc-js internals changed (src/api/grpc/svid.ts).
  let certificateReads = 0;
  const proto = TLSSocket.prototype;
  const original = Object.getOwnPropertyDescriptor(proto, 'getPeerCertificate')?.value as (
    this: TLSSocket,
    ...args: unknown[]
  ) => PeerCertificate;
  proto.getPeerCertificate = function (this: TLSSocket, ...args: unknown[]): PeerCertificate {
    // Server-side sockets only (they have .server); the client reads the server's certificate too.
    if ((this as { server?: unknown }).server !== undefined) certificateReads++;
    return original.apply(this, args);
  } as typeof proto.getPeerCertificate;
  t.teardown(() => {
    proto.getPeerCertificate = original as typeof proto.getPeerCertificate;
  });
  const seen: (X509Certificate | undefined)[] = [];
  const server = await serve(t, {
    listen: [{ url: 'tcp://127.0.0.1:0', credentials: tlsServer(m) }],
    services: [
      implement(NetworkService, {
        request(req, ctx) {
          seen.push(ctx.peer.certificate);
          const md = new Metadata();
          md.set('x-served-by', ctx.peer.spiffeId ?? 'nobody');
          ctx.sendHeader(md);
          return req.connection ?? {};
        },
        close: () => ({}),
      }),
    ],
  });
  const conn = connect(t, server.address, {
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: m.agent.chainPem,
      keyPem: m.agent.keyPem,
      expectedServerId: SERVER_ID,
    }),
  });
  // A plain grpc-js client on the same channel: the typed client does not surface response headers.
  const raw = new Client('unused', ChannelCredentials.createInsecure(), { channelOverride: conn.channel });
  t.teardown(() => raw.close());
  for (let i = 0; i < 2; i++) {
    const headers = await new Promise<Metadata>((resolve, reject) => {
      const call = raw.makeUnaryRequest(
        '/networkservice.NetworkService/Request',
        serializerFor(NetworkServiceRequestSchema),
        deserializerFor(ConnectionSchema),
        { connection: { id: `c-${i}` } },
        new Metadata(),
        (err) => {
          if (err) reject(err);
        },
      );
      call.on('metadata', resolve);
    });
    t.deepEqual(headers.get('x-served-by'), [AGENT_ID]);
  }
  const agentCert = new X509Certificate(m.agent.certPem);
  t.is(seen.length, 2);
  t.is(seen[0]?.fingerprint256, agentCert.fingerprint256);
  t.is(seen[1], seen[0], 'one parsed certificate per peer certificate, not one per call');
  t.is(certificateReads, 1, 'the server read the peer certificate of the connection once for two calls');
});

test('an mTLS server on tcp://:0 (all interfaces) answers on IPv4 and IPv6 loopback', async (t) => {
  const m = await mesh();
  const server = await serve(t, {
    listen: [{ url: 'tcp://:0', credentials: tlsServer(m) }],
    services: [echoNetworkService()],
  });
  t.is(server.address, `tcp://:${server.port}`);
  for (const host of ['127.0.0.1', '[::1]']) {
    const ns = connect(t, `tcp://${host}:${server.port}`, {
      credentials: clientCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: m.agent.chainPem,
        keyPem: m.agent.keyPem,
        expectedServerId: SERVER_ID,
      }),
    }).client(NetworkService);
    t.is((await ns.request({})).labels.servedBy, AGENT_ID, host);
  }
});

test('the client refuses a server with the wrong SPIFFE ID, naming both IDs', async (t) => {
  const m = await mesh();
  const impostor = await issueSvid(m.ca, 'spiffe://mesh.test/impostor');
  const url = await serveTls(t, tlsServer(m, impostor));
  const ns = connect(t, url, {
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: m.agent.chainPem,
      keyPem: m.agent.keyPem,
      expectedServerId: SERVER_ID,
    }),
  }).client(NetworkService);
  const e = await t.throwsAsync(ns.request({}, { timeoutMs: 3000 }), { instanceOf: AgentError });
  t.is(e.code, 'UNAVAILABLE');
  t.regex(
    e.message,
    /server presented SPIFFE ID spiffe:\/\/mesh\.test\/impostor, expected spiffe:\/\/mesh\.test\/server/,
  );
});

test('a predicate can decide which server IDs to accept', async (t) => {
  const m = await mesh();
  const url = await serveTls(t, tlsServer(m));
  const seen: string[] = [];
  const ns = connect(t, url, {
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: m.agent.chainPem,
      keyPem: m.agent.keyPem,
      expectedServerId: (id) => {
        seen.push(id);
        return id.startsWith('spiffe://mesh.test/');
      },
    }),
  }).client(NetworkService);
  await ns.request({});
  t.deepEqual([...new Set(seen)], [SERVER_ID]);
});

test('the client refuses servers whose certificate is no valid SVID, expired, or from another CA', async (t) => {
  const m = await mesh();
  const other = await createTestCa('other.test');
  const cases: [string, ServerTlsCredentials, RegExp][] = [
    ['two URI SANs', rawTlsServer(m.ca.certPem, await badSvids.twoUriSans(m.ca, SERVER_ID)), /2 URI SANs/],
    ['cA=true leaf', rawTlsServer(m.ca.certPem, await badSvids.caLeaf(m.ca, SERVER_ID)), /cA=true/],
    ['expired', rawTlsServer(m.ca.certPem, await badSvids.expired(m.ca, SERVER_ID)), /expired/i],
    [
      'other CA',
      rawTlsServer(m.ca.certPem, await issueSvid(other, 'spiffe://other.test/server')),
      /certificate/i,
    ],
  ];
  for (const [name, credentials, reason] of cases) {
    const url = await serveTls(t, credentials);
    const ns = connect(t, url, {
      credentials: clientCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: m.agent.chainPem,
        keyPem: m.agent.keyPem,
      }),
    }).client(NetworkService);
    const e = await t.throwsAsync(ns.request({}, { timeoutMs: 3000 }), { instanceOf: AgentError }, name);
    t.is(e.code, 'UNAVAILABLE', name);
    t.regex(e.message, reason, name);
  }
});

test('the server refuses a client certificate from another CA', async (t) => {
  const m = await mesh();
  const other = await createTestCa('other.test');
  const stranger = await issueSvid(other, 'spiffe://other.test/agent/x');
  const url = await serveTls(t, tlsServer(m));
  // The client trusts the server (same bundle) but presents a certificate the server cannot chain.
  const ns = connect(t, url, {
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: stranger.chainPem,
      keyPem: stranger.keyPem,
      expectedServerId: SERVER_ID,
    }),
  }).client(NetworkService);
  const e = await t.throwsAsync(ns.request({}, { timeoutMs: 3000 }), { instanceOf: AgentError });
  t.is(e.code, 'UNAVAILABLE');
});

test('the server refuses a client whose certificate chains but is no valid SVID', async (t) => {
  const m = await mesh();
  const bad = await badSvids.twoUriSans(m.ca, AGENT_ID);
  const url = await serveTls(t, tlsServer(m));
  const conn = connect(t, url, {
    credentials: {
      kind: 'tls',
      // Built by hand: clientCredentials() would refuse this certificate as our own identity.
      grpc: ChannelCredentials.createSsl(
        Buffer.from(m.ca.certPem),
        Buffer.from(bad.keyPem),
        Buffer.from(bad.chainPem),
        {
          checkServerIdentity: () => undefined,
        },
      ),
    },
  });
  const e = await t.throwsAsync(conn.client(NetworkService).request({}), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /2 URI SANs/);
});

test('the authorization hook refuses a disallowed SPIFFE ID with PERMISSION_DENIED', async (t) => {
  const m = await mesh();
  const other = await issueSvid(m.ca, 'spiffe://mesh.test/agent/host-2');
  const asked: string[] = [];
  const url = await serveTls(
    t,
    tlsServer(m, m.server, (id, method) => {
      asked.push(`${id} ${method}`);
      return Promise.resolve(id === AGENT_ID);
    }),
  );
  const as = (svid: TestSvid): ReturnType<typeof connect> =>
    connect(t, url, {
      credentials: clientCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: svid.chainPem,
        keyPem: svid.keyPem,
        expectedServerId: SERVER_ID,
      }),
    });

  t.is((await as(m.agent).client(NetworkService).request({})).labels.servedBy, AGENT_ID);
  const e = await t.throwsAsync(as(other).client(NetworkService).request({}), { instanceOf: AgentError });
  t.is(e.code, 'PERMISSION_DENIED');
  t.is(
    e.message,
    'peer spiffe://mesh.test/agent/host-2 is not allowed to call /networkservice.NetworkService/Request',
  );
  t.deepEqual(asked, [
    `${AGENT_ID} /networkservice.NetworkService/Request`,
    'spiffe://mesh.test/agent/host-2 /networkservice.NetworkService/Request',
  ]);
});

test('with an authorization hook, a TLS client without a certificate gets UNAUTHENTICATED', async (t) => {
  const m = await mesh();
  const credentials = serverCredentials({
    bundlePem: m.ca.certPem,
    certChainPem: m.server.chainPem,
    keyPem: m.server.keyPem,
    requireClientCert: false,
    authorizePeer: () => true,
  });
  const url = await serveTls(t, credentials);
  const ns = connect(t, url, {
    credentials: clientCredentials({ bundlePem: m.ca.certPem, expectedServerId: SERVER_ID }),
  }).client(NetworkService);
  const e = await t.throwsAsync(ns.request({}), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(e.message, /needs a client certificate/);
});

test('credentials refuse an empty bundle, a key that does not match, and a bad expected ID', async (t) => {
  const m = await mesh();
  for (const bundlePem of ['', '   \n', 'not a certificate']) {
    const e = t.throws(() => clientCredentials({ bundlePem }), { instanceOf: AgentError });
    t.is(e.code, 'CONFIG_INVALID');
    t.regex(e.message, /trust bundle holds no certificate.*public CA store is never used/);
    t.throws(
      () =>
        serverCredentials({
          bundlePem,
          certChainPem: m.server.chainPem,
          keyPem: m.server.keyPem,
          requireClientCert: true,
        }),
      { message: /trust bundle holds no certificate/ },
    );
  }
  t.throws(
    () =>
      serverCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: m.server.chainPem,
        keyPem: m.agent.keyPem,
        requireClientCert: true,
      }),
    { message: /private key does not belong to our certificate/ },
  );
  t.throws(() => clientCredentials({ bundlePem: m.ca.certPem, certChainPem: m.agent.chainPem }), {
    message: /both a certificate chain and its key/,
  });
  t.throws(() => clientCredentials({ bundlePem: m.ca.certPem, expectedServerId: 'mesh.test/server' }), {
    message: /expectedServerId/,
  });
  const caLeaf = await badSvids.caLeaf(m.ca, SERVER_ID);
  t.throws(
    () =>
      serverCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: caLeaf.chainPem,
        keyPem: caLeaf.keyPem,
        requireClientCert: true,
      }),
    { message: /our own certificate is not usable.*cA=true/ },
  );
});

test('checkServerSpiffeId: exact ID, predicate, throwing predicate, and a non-SVID', async (t) => {
  const m = await mesh();
  // The check reads only the DER of the leaf.
  const peer = (svid: TestSvid): PeerCertificate => ({ raw: Buffer.from(svid.der) }) as PeerCertificate;
  t.is(checkServerSpiffeId(peer(m.server), SERVER_ID), undefined);
  t.is(checkServerSpiffeId(peer(m.server), undefined), undefined);
  t.regex(
    checkServerSpiffeId(peer(m.agent), SERVER_ID)?.message ?? '',
    /presented SPIFFE ID .*agent\/host-1, expected .*server/,
  );
  t.regex(checkServerSpiffeId(peer(m.server), () => false)?.message ?? '', /does not accept/);
  const throwing = (): boolean => {
    throw new Error('policy store down');
  };
  t.regex(
    checkServerSpiffeId(peer(m.server), throwing)?.message ?? '',
    /peer check failed.*policy store down/,
  );
  const caLeaf = await badSvids.caLeaf(m.ca, SERVER_ID);
  t.regex(checkServerSpiffeId(peer(caLeaf), SERVER_ID)?.message ?? '', /server certificate refused.*cA=true/);
});
