// discover's view of the registry in the agent: new connections need the control server (a clear
// UNAVAILABLE naming it while it is unreachable); requests that name their endpoint — refreshes,
// heals, remote agents reaching an endpoint of this host — are answered from the local cache.
import 'reflect-metadata';
import test from 'ava';
import { clientCredentials } from '../../../src/api/grpc/index.js';
import { create, NetworkServiceEndpointSchema } from '../../../src/api/index.js';
import { createTokenSigner } from '../../../src/api/token/index.js';
import { proxyLookup } from '../../../src/daemon/agent/registry-lookup.js';
import { AgentError } from '../../../src/errors/index.js';
import { systemClock, systemRandom } from '../../../src/host/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { RegistryProxy } from '../../../src/registry/proxy/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';

async function idleProxy(): Promise<RegistryProxy> {
  const ca = await createTestCa('mesh.test');
  const svid = await issueSvid(ca, 'spiffe://mesh.test/agent/a');
  // Never started: upstream is "idle", i.e. not reachable, and nothing dials.
  return new RegistryProxy({
    upstreamUrl: 'tcp://127.0.0.1:1',
    credentials: clientCredentials({
      bundlePem: ca.certPem,
      certChainPem: svid.chainPem,
      keyPem: svid.keyPem,
    }),
    signer: createTokenSigner({
      spiffeId: svid.spiffeId,
      certificatePem: svid.certPem,
      privateKeyPem: svid.keyPem,
      clock: systemClock,
    }),
    upstreamSpiffeId: 'spiffe://mesh.test/server',
    publicUrl: 'tcp://10.0.0.1:5001',
    clock: systemClock,
    random: systemRandom,
    log: silentLogger(),
  });
}

const signal = new AbortController().signal;

test('picking an endpoint for a new connection while the control server is unreachable says so', async (t) => {
  const proxy = await idleProxy();
  const lookup = proxyLookup(proxy, 'tcp://mesh.example:5002');
  const e = await t.throwsAsync(lookup.findEndpoints({ networkServiceNames: ['web'] }, { signal }));
  t.true(AgentError.is(e, 'UNAVAILABLE'));
  t.regex(e.message, /control server tcp:\/\/mesh\.example:5002 is unreachable/);
  t.regex(e.message, /existing connections keep working/);
});

test('an endpoint named by the request is found in the cache while the control server is unreachable', async (t) => {
  const proxy = await idleProxy();
  const { upstream } = await proxy.registerEndpoint(
    create(NetworkServiceEndpointSchema, {
      name: 'a-web',
      networkServiceNames: ['web'],
      url: 'unix:///run/nsm-agent/nsm.sock',
    }),
  );
  t.is(upstream, 'queued');
  const lookup = proxyLookup(proxy, 'tcp://mesh.example:5002');
  const found = await lookup.findEndpoints({ name: 'a-web' }, { signal });
  t.deepEqual(
    found.map((e) => [e.name, e.url]),
    [['a-web', 'unix:///run/nsm-agent/nsm.sock']],
  );
  await proxy.close();
});
