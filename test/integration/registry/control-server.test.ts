// The registry as `nsm-agent server run` serves it (src/daemon/control-server.ts): on the listener
// shared with enrolment, where TLS asks for but does not require client certificates. A tool
// identity from `server issue` registers, finds, watches and unregisters like an NSM component;
// a caller without a certificate is refused.
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NetworkServiceEndpointRegistryService } from '../../../src/api/index.js';
import { clientCredentials, dial } from '../../../src/api/grpc/index.js';
import { initControlServer, startControlServer } from '../../../src/daemon/control-server.js';
import { AgentError } from '../../../src/errors/index.js';
import { systemClock } from '../../../src/host/index.js';
import { loadCa } from '../../../src/identity/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { RegistryClient, SERVER_ID, TD, Watch, all, toolIdentity } from './fixtures.js';

test('the control server’s registry: an SVID holder registers, finds, watches, unregisters; no certificate, no access', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'nsm-registry-cs-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const init = await initControlServer({ trustDomain: TD, dataDir });
  t.is(init.serverSpiffeId, SERVER_ID);
  const server = await startControlServer({
    dataDir,
    listen: 'tcp://127.0.0.1:0',
    log: silentLogger(),
    hostname: 'test-host',
    registryExpirationMs: 30_000,
  });
  t.teardown(() => server.close());

  const { svid, bundle } = await toolIdentity((await loadCa(dataDir)).ca, dataDir, 'nse-1');
  const a = new RegistryClient(t, server.url, svid, bundle, systemClock);

  const w = new Watch(a.nse.find({ networkServiceEndpoint: { name: 'cs-nse' }, watch: true }));
  t.teardown(() => w.cancel());
  const { response, path } = await a.registerNse({
    name: 'cs-nse',
    networkServiceNames: ['db-net'],
    url: 'tcp://10.0.0.1:5001',
  });
  t.deepEqual(response.pathIds, [svid.spiffeId, SERVER_ID]);
  t.truthy(path);
  t.is((await w.take(1))[0]?.networkServiceEndpoint?.name, 'cs-nse');
  t.is((await all(a.nse.find({ networkServiceEndpoint: { networkServiceNames: ['db-net'] } }))).length, 1);
  await a.unregisterNse({ name: 'cs-nse' }, { path: path! });
  t.true((await w.take(1))[0]?.deleted);

  const anonymous = dial(server.url, {
    credentials: clientCredentials({ bundlePem: bundle.certPem, expectedServerId: SERVER_ID }),
  });
  t.teardown(() => anonymous.close());
  const e = await t.throwsAsync(all(anonymous.client(NetworkServiceEndpointRegistryService).find({})), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'UNAUTHENTICATED');
});
