// A control server that runs past half of its own SVID's lifetime re-issues the SVID (same key),
// writes it to <dataDir>/ca/server.pem and serves it to new connections without a restart; the
// registry keeps working on it (its path tokens follow the new certificate).
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import test from 'ava';
import { startControlServer } from '../../../src/daemon/control-server.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { initCa, loadCa } from '../../../src/identity/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { RegistryClient, TD, toolIdentity } from './fixtures.js';

/** The serial of the certificate a fresh TLS connection to `port` is served. */
async function servedSerial(port: number, bundlePem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: bundlePem,
      servername: 'nsm-agent.invalid',
      ALPNProtocols: ['h2'],
      // The SPIFFE ID, not a host name, names the server; the chain is still verified.
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
    socket.setTimeout(5_000, () => {
      socket.destroy();
      reject(new Error('TLS handshake timed out'));
    });
  });
}

test('past half its life the server SVID is re-issued and served to new connections without a restart', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'nsm-cs-svid-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  // A 10-minute server SVID issued 4 minutes ago: due for re-issue in one (fake) minute.
  const clock = new FakeClock(Date.now() - 240_000);
  await initCa({ trustDomain: TD, dataDir, clock, serverSvidTtlMs: 600_000 });
  await clock.advance(240_000);
  const server = await startControlServer({
    dataDir,
    listen: 'tcp://127.0.0.1:0',
    log: silentLogger(),
    hostname: 'test-host',
    clock,
  });
  t.teardown(() => server.close());
  const port = Number(new URL(server.url.replace('tcp://', 'http://')).port);
  const before = await loadCa(dataDir);
  const bundlePem = before.ca.bundlePem;
  const first = await servedSerial(port, bundlePem);
  t.is(first, new X509Certificate(before.server.certPem).serialNumber);

  await clock.advance(30_000);
  t.is(await servedSerial(port, bundlePem), first, 'not due yet: same certificate');

  await clock.advance(60_000);
  // The refresh writes a file: wait (bounded) for it instead of assuming it is done.
  let after = await loadCa(dataDir);
  for (let i = 0; i < 100 && after.server.certPem === before.server.certPem; i++) {
    await new Promise((r) => setTimeout(r, 50));
    after = await loadCa(dataDir);
  }
  const renewed = new X509Certificate(after.server.certPem);
  t.not(renewed.serialNumber, first, 'server.pem was re-issued');
  t.is(after.server.keyPem, before.server.keyPem, 'same key');
  t.is(await servedSerial(port, bundlePem), renewed.serialNumber, 'new connections get the new SVID');
  t.is(await readFile(join(dataDir, 'ca', 'server.pem'), 'utf8'), after.server.certPem);

  // The registry still registers through the re-issued identity (its path token is signed with it).
  const { svid, bundle } = await toolIdentity(after.ca, dataDir, 'nse-after-refresh');
  const client = new RegistryClient(t, server.url, svid, bundle, clock);
  const { response } = await client.registerNse({
    name: 'after-refresh',
    networkServiceNames: ['db'],
    url: 'tcp://10.0.0.9:5001',
  });
  t.is(response.name, 'after-refresh');
});
