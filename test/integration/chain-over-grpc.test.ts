// The foundation pieces together, as the daemon will use them: an NSM NetworkService served by a
// chain over real gRPC (unix socket and mTLS tcp), called by a client chain through the typed client.
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  MechanismSchema,
  NetworkServiceRequestSchema,
  NetworkServiceService,
  create,
} from '../../src/api/index.js';
import type { ClientTransportCredentials, ServerTransportCredentials } from '../../src/api/grpc/index.js';
import {
  clientCredentials,
  dial,
  insecure,
  serverCredentials,
  startServer,
} from '../../src/api/grpc/index.js';
import { beginServer } from '../../src/chain/begin/server.js';
import { connectClient, networkServiceOf } from '../../src/chain/edge/index.js';
import { buildChain } from '../../src/chain/core/chain.js';
import type { Chain } from '../../src/chain/core/chain.js';
import { ChainContext } from '../../src/chain/core/context.js';
import type { ChainElement } from '../../src/chain/core/element.js';
import { metadataServer } from '../../src/chain/metadata/server.js';
import { updatePathClient } from '../../src/chain/updatepath/client.js';
import { updatePathServer } from '../../src/chain/updatepath/server.js';
import { systemClock } from '../../src/host/clock.js';
import { systemRandom } from '../../src/host/random.js';
import { silentLogger } from '../../src/log/logger.js';
import { createTestCa, issueSvid } from '../helpers/pki.js';

/** A tiny endpoint: sets a KERNEL mechanism and remembers who called. */
function endpoint(seen: string[]): ChainElement {
  return {
    name: 'endpoint',
    request(ctx, request) {
      seen.push(ctx.peer?.spiffeId ?? 'local');
      const conn = request.connection!;
      conn.mechanism = create(MechanismSchema, {
        cls: 'LOCAL',
        type: 'KERNEL',
        parameters: { name: 'nsm-1' },
      });
      return Promise.resolve(conn);
    },
    close() {
      seen.push('closed');
      return Promise.resolve();
    },
  };
}

async function serve(url: string, credentials: ServerTransportCredentials, chain: Chain) {
  return startServer({
    listen: [{ url, credentials }],
    log: silentLogger(),
    services: [networkServiceOf(chain, { log: silentLogger() })],
  });
}

function clientChain(url: string, credentials: ClientTransportCredentials) {
  const connection = dial(url, { credentials });
  const remote = connection.client(NetworkServiceService);
  const connect = connectClient(remote, { timeoutMs: 5_000 });
  return { chain: buildChain('nsc', [updatePathClient('nsc'), connect]), connection };
}

const localCtx = (): ChainContext =>
  new ChainContext({ log: silentLogger(), clock: systemClock, random: systemRandom });

test('a chain served on a unix socket: path [nsc, nsmgr], caller gets index 0 and its id back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-chain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seen: string[] = [];
  const server = await serve(
    `unix://${dir}/nsm.sock`,
    insecure(),
    buildChain('nsmgr', [updatePathServer('nsmgr'), beginServer(), metadataServer(), endpoint(seen)]),
  );
  t.teardown(() => server.close({ graceMs: 100 }));
  const { chain, connection } = clientChain(`unix://${dir}/nsm.sock`, insecure());
  t.teardown(() => connection.close());

  const req = create(NetworkServiceRequestSchema, {
    connection: { id: 'conn-1', networkService: 'web' },
  });
  const conn = await chain.request(localCtx(), req);
  t.is(conn.id, 'conn-1');
  t.is(conn.path?.index, 0);
  t.deepEqual(
    conn.path?.pathSegments.map((s) => s.name),
    ['nsc', 'nsmgr'],
  );
  t.is(conn.mechanism?.parameters.name, 'nsm-1');
  t.is(conn.state, 0, 'UP');

  // Refresh with the returned connection reuses the server's segment id; close reaches the endpoint.
  const again = await chain.request(localCtx(), create(NetworkServiceRequestSchema, { connection: conn }));
  t.is(again.path?.pathSegments[1]?.id, conn.path?.pathSegments[1]?.id);
  await chain.close(localCtx(), again);
  t.deepEqual(seen, ['local', 'local', 'closed']);
});

test('over mTLS tcp the server chain sees the client SPIFFE ID; a client of another mesh is refused', async (t) => {
  const ca = await createTestCa('mesh.test');
  const serverSvid = await issueSvid(ca, 'spiffe://mesh.test/agent/host-a');
  const clientSvid = await issueSvid(ca, 'spiffe://mesh.test/agent/host-b');
  const seen: string[] = [];
  const server = await serve(
    'tcp://127.0.0.1:0',
    serverCredentials({
      bundlePem: ca.certPem,
      certChainPem: serverSvid.chainPem,
      keyPem: serverSvid.keyPem,
      requireClientCert: true,
    }),
    buildChain('nsmgr', [updatePathServer('nsmgr'), beginServer(), endpoint(seen)]),
  );
  t.teardown(() => server.close({ graceMs: 100 }));
  const url = `tcp://127.0.0.1:${server.port ?? 0}`;

  const { chain, connection } = clientChain(
    url,
    clientCredentials({
      bundlePem: ca.certPem,
      certChainPem: clientSvid.chainPem,
      keyPem: clientSvid.keyPem,
      expectedServerId: 'spiffe://mesh.test/agent/host-a',
    }),
  );
  t.teardown(() => connection.close());
  const conn = await chain.request(
    localCtx(),
    create(NetworkServiceRequestSchema, { connection: { id: 'c-1', networkService: 'web' } }),
  );
  t.is(conn.path?.index, 0);
  t.deepEqual(seen, ['spiffe://mesh.test/agent/host-b']);

  const otherCa = await createTestCa('other.test');
  const stranger = await issueSvid(otherCa, 'spiffe://other.test/agent/x');
  const { chain: strangerChain, connection: c2 } = clientChain(
    url,
    clientCredentials({ bundlePem: ca.certPem, certChainPem: stranger.chainPem, keyPem: stranger.keyPem }),
  );
  t.teardown(() => c2.close());
  await t.throwsAsync(
    strangerChain.request(
      localCtx(),
      create(NetworkServiceRequestSchema, { connection: { id: 'c-2', networkService: 'web' } }),
    ),
  );
  t.deepEqual(seen, ['spiffe://mesh.test/agent/host-b'], 'the stranger never reached the chain');
});
