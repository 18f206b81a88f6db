// A client whose SVID is renewed keeps its channel: connections already up go on with the old
// certificate, and the next TLS connection of the same channel presents the new one — no re-dial, so
// the monitor streams an agent holds to other agents survive its renewals.
import 'reflect-metadata';
import test from 'ava';
import { HealthCheckRequestSchema, HealthService, create } from '../../src/api/index.js';
import {
  dial,
  serverCredentials,
  startServer,
  updatableClientCredentials,
} from '../../src/api/grpc/index.js';
import type { GrpcServer } from '../../src/api/grpc/index.js';
import { silentLogger } from '../../src/log/index.js';
import { createTestCa, issueSvid } from '../helpers/pki.js';

test('a renewed client SVID is presented on the next connection of the same channel', async (t) => {
  const ca = await createTestCa('mesh.test');
  const server = await issueSvid(ca, 'spiffe://mesh.test/agent/a');
  const before = await issueSvid(ca, 'spiffe://mesh.test/agent/b');
  // Another SPIFFE ID only so the test can tell which certificate the server saw.
  const renewed = await issueSvid(ca, 'spiffe://mesh.test/agent/b-renewed');
  const seen: string[] = [];
  const start = (port: number): Promise<GrpcServer> =>
    startServer({
      listen: [
        {
          url: `tcp://127.0.0.1:${port}`,
          credentials: serverCredentials({
            bundlePem: ca.certPem,
            certChainPem: server.chainPem,
            keyPem: server.keyPem,
            requireClientCert: true,
            authorizePeer: (id) => {
              seen.push(id);
              return true;
            },
          }),
        },
      ],
      services: [],
      log: silentLogger(),
    });
  let srv = await start(0);
  const port = srv.port ?? 0;
  const serials: string[] = [];
  const creds = updatableClientCredentials(
    { bundlePem: ca.certPem, certChainPem: before.chainPem, keyPem: before.keyPem },
    {
      expectedServerId: 'spiffe://mesh.test/agent/a',
      onServerCertificate: (c) => serials.push(c.serialNumber),
    },
  );
  const conn = dial(`tcp://127.0.0.1:${port}`, {
    credentials: creds,
    tuning: { initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 200 },
  });
  t.teardown(async () => {
    conn.close();
    await srv.close({ graceMs: 0 });
  });
  const health = conn.client(HealthService);
  const check = () => health.check(create(HealthCheckRequestSchema, {}), { timeoutMs: 5_000 });
  await check();
  t.true(serials.length >= 1, 'the server certificate was seen (and accepted) on the handshake');

  // Renewal: same SPIFFE ID, new certificate and key; the connection that is up is left alone.
  creds.update({ bundlePem: ca.certPem, certChainPem: renewed.chainPem, keyPem: renewed.keyPem });
  await check();
  t.is(seen.at(-1), 'spiffe://mesh.test/agent/b', 'the connection that was up keeps its certificate');
  const handshakesBefore = serials.length;

  // The server restarts: the channel reconnects by itself and presents the renewed SVID.
  await srv.close({ graceMs: 0 });
  srv = await start(port);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await check();
      break;
    } catch (e: unknown) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  t.true(serials.length > handshakesBefore, 'a new handshake on the same channel');
  t.is(seen.at(-1), 'spiffe://mesh.test/agent/b-renewed', 'the reconnect presented the renewed SVID');
  t.throws(
    () => creds.update({ bundlePem: ca.certPem, certChainPem: renewed.chainPem, keyPem: before.keyPem }),
    {
      message: /private key does not belong/,
    },
  );
});
