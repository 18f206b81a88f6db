import test from 'ava';
import {
  ConnectionContextSchema,
  DNSConfigSchema,
  DNSContextSchema,
  IPContextSchema,
  RouteSchema,
  clone,
  create,
} from '../../../src/api/index.js';
import type { NetworkServiceRequest } from '../../../src/api/index.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import { updatePathServer } from '../../../src/chain/updatepath/index.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { ServiceIpam, dnsContextServer, ipamServer, serviceDnsName } from '../../../src/workloads/index.js';
import { hook, requestWith, testContext } from '../../helpers/chain.js';

const cidr = '169.254.0.0/16';

/** The exposing agent's chain for "web": updatepath, ipam, dnscontext, then the endpoint. */
function endpointChain(ipam: ServiceIpam, endpoint = hook('endpoint', () => undefined)) {
  return buildChain('expose-web', [
    updatePathServer('alpha-web'),
    ipamServer(ipam),
    dnsContextServer({ service: 'web' }),
    endpoint,
  ]);
}

/** A consumer's request as it arrives: its own segment (id stable per consumer) and the hop before us. */
function consumerRequest(clientId: string, hopConnId = `${clientId}-hop`): NetworkServiceRequest {
  return requestWith(
    [
      { name: 'beta', id: clientId },
      { name: 'beta-nsmgr', id: hopConnId },
    ],
    1,
    hopConnId,
  );
}

test('a connection gets its client address and the service address, with a route each way', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  const conn = await endpointChain(ipam).request(testContext(), consumerRequest('beta-web-host'));
  const ip = conn.context?.ipContext;
  const client = ipam.addressOf('beta-web-host')!;
  t.regex(client, /^169\.254\.\d+\.\d+\/32$/);
  t.deepEqual(ip?.srcIpAddrs, [client]);
  t.deepEqual(ip?.dstIpAddrs, [ipam.serviceAddress]);
  t.deepEqual(
    ip?.srcRoutes.map((r) => r.prefix),
    [ipam.serviceAddress],
  );
  t.deepEqual(
    ip?.dstRoutes.map((r) => r.prefix),
    [client],
  );
  t.deepEqual(
    conn.context?.dnsContext?.configs.map((c) => c.searchDomains),
    [['nsm']],
  );
  t.is(serviceDnsName('web'), 'web.nsm');
});

test('a refresh keeps the address and adds nothing twice', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  const chain = endpointChain(ipam);
  const first = await chain.request(testContext(), consumerRequest('c1'));
  const again = consumerRequest('c1');
  again.connection!.context = clone(ConnectionContextSchema, first.context!);
  const second = await chain.request(testContext(), again);
  t.deepEqual(second.context?.ipContext, first.context?.ipContext);
  t.is(second.context?.dnsContext?.configs.length, 1);
  t.is(ipam.inUse, 1);
});

test('the key is the client segment: another hop id (a heal through another nsmgr) keeps the address', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  const chain = endpointChain(ipam);
  const a = await chain.request(testContext(), consumerRequest('c1', 'hop-1'));
  const b = await chain.request(testContext(), consumerRequest('c1', 'hop-2'));
  t.deepEqual(b.context?.ipContext?.srcIpAddrs, a.context?.ipContext?.srcIpAddrs);
  const other = await chain.request(testContext(), consumerRequest('c2'));
  t.notDeepEqual(other.context?.ipContext?.srcIpAddrs, a.context?.ipContext?.srcIpAddrs);
});

test('after an agent restart a refresh gets its address back, even one that was not the derived one', async (t) => {
  const before = new ServiceIpam({ service: 'web', cidr });
  const req = consumerRequest('c1');
  req.connection!.context = create(ConnectionContextSchema, {
    ipContext: create(IPContextSchema, { srcIpAddrs: ['169.254.77.7/32'] }),
  });
  const first = await endpointChain(before).request(testContext(), req);
  t.deepEqual(first.context?.ipContext?.srcIpAddrs, ['169.254.77.7/32']);

  const after = new ServiceIpam({ service: 'web', cidr });
  const refresh = consumerRequest('c1');
  refresh.connection!.context = clone(ConnectionContextSchema, first.context!);
  const second = await endpointChain(after).request(testContext(), refresh);
  t.deepEqual(second.context?.ipContext, first.context?.ipContext);
  t.is(after.addressOf('c1'), '169.254.77.7/32');
});

test("other IPAMs' entries are kept; stale entries of this range are replaced", async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  ipam.allocate('someone-else', ['169.254.1.1/32']);
  const req = consumerRequest('c1');
  req.connection!.context = create(ConnectionContextSchema, {
    ipContext: create(IPContextSchema, {
      // 169.254.1.1 is held by another connection now; 10.1.0.2 is another IPAM's.
      srcIpAddrs: ['10.1.0.2/32', '169.254.1.1/32'],
      dstIpAddrs: ['10.1.0.1/32', '169.254.9.9/32'],
      srcRoutes: [
        create(RouteSchema, { prefix: '10.2.0.0/16' }),
        create(RouteSchema, { prefix: '169.254.9.9/32' }),
      ],
    }),
    dnsContext: create(DNSContextSchema, {
      configs: [create(DNSConfigSchema, { dnsServerIps: ['10.1.0.53'], searchDomains: ['corp'] })],
    }),
  });
  const conn = await endpointChain(ipam).request(testContext(), req);
  const ip = conn.context!.ipContext!;
  const client = ipam.addressOf('c1')!;
  t.not(client, '169.254.1.1/32');
  t.deepEqual(ip.srcIpAddrs, ['10.1.0.2/32', client]);
  t.deepEqual(ip.dstIpAddrs, ['10.1.0.1/32', ipam.serviceAddress]);
  t.deepEqual(
    ip.srcRoutes.map((r) => r.prefix),
    ['10.2.0.0/16', ipam.serviceAddress],
  );
  t.deepEqual(
    conn.context?.dnsContext?.configs.map((c) => c.searchDomains),
    [['corp'], ['nsm']],
  );
});

test('when the rest of the chain refuses a new connection its address is released', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  const refuse = hook('endpoint', () => {
    throw new AgentError('UNAVAILABLE', 'endpoint down');
  });
  await t.throwsAsync(endpointChain(ipam, refuse).request(testContext(), consumerRequest('c1')), {
    message: 'endpoint down',
  });
  t.is(ipam.inUse, 0);
});

test('a refused refresh keeps the address the connection had', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  let fail = false;
  const endpoint = hook('endpoint', () => {
    if (fail) throw new AgentError('UNAVAILABLE', 'endpoint down');
  });
  const chain = endpointChain(ipam, endpoint);
  const first = await chain.request(testContext(), consumerRequest('c1'));
  const had = ipam.addressOf('c1');
  fail = true;
  const moved = consumerRequest('c1');
  moved.connection!.context = create(ConnectionContextSchema, {
    ipContext: create(IPContextSchema, { srcIpAddrs: ['169.254.5.5/32'] }),
  });
  await t.throwsAsync(chain.request(testContext(), moved));
  t.is(ipam.addressOf('c1'), had);
  t.deepEqual(first.context?.ipContext?.srcIpAddrs, [had]);
  t.is(ipam.inUse, 1);
});

test('Close releases the address after the rest of the chain, even when that fails', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr });
  const seen: (string | undefined)[] = [];
  let failClose = false;
  const endpoint = hook('endpoint', (op) => {
    if (op !== 'close') return;
    seen.push(ipam.addressOf('c1'));
    if (failClose) throw new AgentError('UNAVAILABLE', 'endpoint down');
  });
  const chain = endpointChain(ipam, endpoint);
  const conn = await chain.request(testContext(), consumerRequest('c1'));
  await chain.close(testContext(), conn);
  t.is(ipam.inUse, 0);
  t.truthy(seen[0], 'still held while the endpoint closes');

  const again = await chain.request(testContext(), consumerRequest('c1'));
  failClose = true;
  await t.throwsAsync(chain.close(testContext(), again));
  t.is(ipam.inUse, 0);
});

test('a full range refuses the connection with RESOURCE_EXHAUSTED before the endpoint runs', async (t) => {
  const ipam = new ServiceIpam({ service: 'web', cidr: '10.9.0.0/30' });
  let reached = 0;
  const chain = endpointChain(
    ipam,
    hook('endpoint', () => {
      reached++;
    }),
  );
  await chain.request(testContext(), consumerRequest('c1'));
  const e = await t.throwsAsync(chain.request(testContext(), consumerRequest('c2')), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'RESOURCE_EXHAUSTED');
  t.is(reached, 1);
});

test('the dnscontext element can name resolvers and another domain', async (t) => {
  const chain = buildChain('dns', [
    dnsContextServer({ service: 'web', domain: 'mesh', serverIps: ['169.254.0.53'] }),
  ]);
  const conn = await chain.request(testContext(), consumerRequest('c1'));
  t.deepEqual(
    conn.context?.dnsContext?.configs.map((c) => [c.dnsServerIps, c.searchDomains]),
    [[['169.254.0.53'], ['mesh']]],
  );
  t.is(serviceDnsName('web', 'mesh'), 'web.mesh');
});
