import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  create,
  kernelMechanism,
  ConnectionContextSchema,
  MechanismSchema,
  NetworkServiceRequestSchema,
  wireguardMechanism,
  WireguardParam,
} from '../../../src/api/index.js';
import type { Connection, NetworkServiceRequest } from '../../../src/api/index.js';
import { buildChain } from '../../../src/chain/core/index.js';
import type { ChainElement } from '../../../src/chain/core/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { Forwarder } from '../../../src/forwarder/index.js';
import {
  kernelClient,
  kernelServer,
  wireguardClient,
  wireguardServer,
} from '../../../src/forwarder/mechanisms/index.js';
import { generatePrivateKey, publicKeyOf } from '../../../src/host/wireguard/index.js';
import { SequenceRandom } from '../../../src/host/fake/index.js';
import { testContext } from '../../helpers/chain.js';
import { FakeHost, FakeHostWireGuard } from './fake-host.js';
import { device } from './fixtures.js';

const random = new SequenceRandom('m');
const remoteKey = publicKeyOf(generatePrivateKey(random));
const ownKey = publicKeyOf(device.privateKey);
const wgOptions = (forwarder: Forwarder) => ({
  forwarder,
  tunnelIp: '10.0.0.1',
  publicKey: ownKey,
  listenPort: 51820,
  mtu: 1420,
});

async function setup(t: { teardown: (f: () => Promise<void>) => void }) {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-mech-unit-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const host = new FakeHost(['host', 'app']);
  const wg = new FakeHostWireGuard(host);
  const forwarder = new Forwarder({ runner: host, wireguard: wg, stateDir });
  await forwarder.setDevice(device);
  return { host, wg, forwarder };
}

/** The far end of the chain: fills the IP context like an NSE (and answers a WIREGUARD offer). */
function endpoint(o: { fail?: boolean; answerWireguard?: boolean; closes?: string[] } = {}): ChainElement {
  return {
    name: 'endpoint',
    request(_ctx, request) {
      if (o.fail === true) return Promise.reject(new AgentError('UNAVAILABLE', 'endpoint down'));
      const conn = request.connection as Connection;
      conn.context = create(ConnectionContextSchema, {
        ipContext: { srcIpAddrs: ['169.254.0.1/32'], dstIpAddrs: ['169.254.0.2/32'] },
      });
      const offer = request.mechanismPreferences.find((m) => m.type === 'WIREGUARD');
      if (o.answerWireguard === true && offer !== undefined) {
        conn.mechanism = wireguardMechanism({
          srcIp: '10.0.0.1',
          srcPublicKey: ownKey,
          dstIp: '10.0.0.2',
          dstPort: 51821,
          dstPublicKey: remoteKey,
        });
      } else if (conn.mechanism === undefined) {
        conn.mechanism = request.mechanismPreferences[0];
      }
      return Promise.resolve(conn);
    },
    close(_ctx, conn) {
      o.closes?.push(conn.id);
      return Promise.resolve();
    },
  };
}

function failAfter(): ChainElement {
  return {
    name: 'fail-after',
    async request(ctx, request, next) {
      await next.request(ctx, request);
      throw new AgentError('PERMISSION_DENIED', 'a later element refused');
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

function req(
  id: string,
  prefs: NetworkServiceRequest['mechanismPreferences'],
  payload = 'IP',
): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, {
    connection: { id, payload, networkService: 'db' },
    mechanismPreferences: prefs,
  });
}

const offerFromRemote = () =>
  wireguardMechanism({ srcIp: '10.0.0.2', srcPort: 51821, srcPublicKey: remoteKey, mtu: 1400 });

test('wireguardServer answers dst_* and declares the peer with the client side as allowed IPs', async (t) => {
  const { forwarder, wg, host } = await setup(t);
  const chain = buildChain('s', [wireguardServer(wgOptions(forwarder)), endpoint()]);
  const conn = await chain.request(testContext(), req('c1', [offerFromRemote()]));
  t.deepEqual(conn.mechanism?.parameters, {
    src_ip: '10.0.0.2',
    src_port: '51821',
    src_public_key: remoteKey,
    MTU: '1400',
    dst_ip: '10.0.0.1',
    dst_port: '51820',
    dst_public_key: ownKey,
  });
  const peer = (await wg.show('nsm-wg0'))?.peers[0];
  t.is(peer?.publicKey, remoteKey);
  t.is(peer?.endpoint, '10.0.0.2:51821');
  t.deepEqual(peer?.allowedIps, ['169.254.0.1/32']);
  t.true(host.ns('host').routes.some((r) => r.dst === '169.254.0.1/32' && r.dev === 'nsm-wg0'));

  await chain.close(testContext(), conn);
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
  t.deepEqual(host.ns('host').routes, []);
  t.deepEqual(forwarder.desired.entries, {});
});

test('wireguardServer: when next fails its peer is gone again; other entries stay', async (t) => {
  const { forwarder, wg } = await setup(t);
  await forwarder.setEntry('other/x', { kind: 'host', addresses: ['169.254.9.1/32'] });
  const chain = buildChain('s', [wireguardServer(wgOptions(forwarder)), endpoint({ fail: true })]);
  await t.throwsAsync(chain.request(testContext(), req('c1', [offerFromRemote()])), {
    message: /endpoint down/,
  });
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
  t.deepEqual(Object.keys(forwarder.desired.entries), ['other/x']);
});

test('wireguardServer refuses an offer without src_public_key and sets nothing', async (t) => {
  const { forwarder } = await setup(t);
  const bad = offerFromRemote();
  bad.parameters = Object.fromEntries(
    Object.entries(bad.parameters).filter(([k]) => k !== WireguardParam.SRC_PUBLIC_KEY),
  );
  const chain = buildChain('s', [wireguardServer(wgOptions(forwarder)), endpoint()]);
  await t.throwsAsync(chain.request(testContext(), req('c1', [bad])), {
    message: /src_public_key is missing/,
  });
  t.deepEqual(forwarder.desired.entries, {});
});

test('wireguardServer leaves ETHERNET payloads and other mechanisms alone', async (t) => {
  const { forwarder } = await setup(t);
  const chain = buildChain('s', [wireguardServer(wgOptions(forwarder)), endpoint()]);
  await chain.request(testContext(), req('c1', [offerFromRemote()], 'ETHERNET'));
  await chain.request(testContext(), req('c2', [kernelMechanism({ name: 'x' })]));
  t.deepEqual(forwarder.desired.entries, {});
});

test('wireguardClient offers src_* and declares the answered peer; a bad answer is closed and leaves nothing', async (t) => {
  const { forwarder, wg } = await setup(t);
  const chain = buildChain('c', [wireguardClient(wgOptions(forwarder)), endpoint({ answerWireguard: true })]);
  const request = req('c1', []);
  const conn = await chain.request(testContext(), request);
  t.deepEqual(
    request.mechanismPreferences.map((m) => [m.type, m.parameters['src_ip'], m.parameters['src_public_key']]),
    [['WIREGUARD', '10.0.0.1', ownKey]],
  );
  t.is(conn.mechanism?.parameters['dst_public_key'], remoteKey);
  const peer = (await wg.show('nsm-wg0'))?.peers[0];
  t.is(peer?.endpoint, '10.0.0.2:51821');
  t.deepEqual(peer?.allowedIps, ['169.254.0.2/32']);
  await chain.close(testContext(), conn);
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);

  const closes: string[] = [];
  const broken: ChainElement = {
    name: 'broken-remote',
    async request(ctx, r, next) {
      const c = await next.request(ctx, r);
      delete c.mechanism?.parameters['dst_public_key'];
      return c;
    },
    close: (ctx, c, next) => next.close(ctx, c),
  };
  const chain2 = buildChain('c', [
    wireguardClient(wgOptions(forwarder)),
    broken,
    endpoint({ answerWireguard: true, closes }),
  ]);
  await t.throwsAsync(chain2.request(testContext(), req('c2', [])), { message: /dst_public_key/ });
  t.deepEqual(closes, ['c2'], 'what was set up after it is closed');
  t.deepEqual(forwarder.desired.entries, {});
});

test('kernelServer: a host process gets its addresses on the device; a netns workload a veth', async (t) => {
  const { forwarder, host } = await setup(t);
  const chain = buildChain('s', [kernelServer({ forwarder }), endpoint()]);
  const hostConn = await chain.request(
    testContext(),
    req('c1', [create(MechanismSchema, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'x' } })]),
  );
  t.is(hostConn.mechanism?.type, 'KERNEL');
  t.deepEqual(host.ns('host').links.find((l) => l.name === 'nsm-wg0')?.addresses, ['169.254.0.1/32']);

  const podConn = await chain.request(
    testContext(),
    req('c2', [kernelMechanism({ name: 'db0', inodeURL: 'file:///var/run/netns/app' })]),
  );
  const inside = host.ns('app').links.find((l) => l.name === 'db0');
  t.deepEqual(inside?.addresses, ['169.254.0.1/32']);
  t.deepEqual(
    host.ns('app').routes.map((r) => `${r.dst} ${r.dev}`),
    ['169.254.0.2/32 db0'],
  );

  await chain.close(testContext(), podConn);
  await chain.close(testContext(), hostConn);
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );
  t.deepEqual(host.ns('host').links.find((l) => l.name === 'nsm-wg0')?.addresses, []);
});

test('kernelServer refuses a netns it cannot open, before changing anything', async (t) => {
  const { forwarder } = await setup(t);
  const chain = buildChain('s', [kernelServer({ forwarder }), endpoint()]);
  await t.throwsAsync(chain.request(testContext(), req('c1', [kernelMechanism({ name: 'x' })])), {
    message: /sender’s own netns/,
  });
  await t.throwsAsync(
    chain.request(testContext(), req('c2', [kernelMechanism({ name: 'x', inodeURL: 'inode://4/4026532' })])),
    {
      message: /fd passing is not supported/,
    },
  );
  t.deepEqual(forwarder.desired.entries, {});
});

test('each element undoes its own work when a later element fails: first request leaves nothing', async (t) => {
  const { forwarder, host, wg } = await setup(t);
  const chain = buildChain('s', [
    kernelServer({ forwarder }),
    wireguardServer(wgOptions(forwarder)),
    failAfter(),
    endpoint(),
  ]);
  const request = req('c1', [
    kernelMechanism({ name: 'db0', inodeURL: '/var/run/netns/app' }),
    offerFromRemote(),
  ]);
  await t.throwsAsync(chain.request(testContext(), request), { message: /later element refused/ });
  t.deepEqual(forwarder.desired.entries, {});
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );
});

test('a failed refresh puts back the entry the connection had, not nothing', async (t) => {
  const { forwarder } = await setup(t);
  let fail = false;
  const gate: ChainElement = {
    name: 'gate',
    async request(ctx, r, next) {
      const c = await next.request(ctx, r);
      if (fail) throw new AgentError('UNAVAILABLE', 'refresh failed');
      return c;
    },
    close: (ctx, c, next) => next.close(ctx, c),
  };
  const chain = buildChain('s', [wireguardServer(wgOptions(forwarder)), gate, endpoint()]);
  const conn = await chain.request(testContext(), req('c1', [offerFromRemote()]));
  const established = forwarder.entry('c1/wireguard-server');
  t.truthy(established);
  fail = true;
  const refresh = create(NetworkServiceRequestSchema, { connection: conn, mechanismPreferences: [] });
  await t.throwsAsync(chain.request(testContext(), refresh));
  t.deepEqual(forwarder.entry('c1/wireguard-server'), established);
});

test('kernelClient offers KERNEL with a name and declares the endpoint side from its answer', async (t) => {
  const { forwarder, host } = await setup(t);
  const nse: ChainElement = {
    name: 'nse',
    async request(ctx, r, next) {
      const offer = r.mechanismPreferences[0]!;
      t.is(offer.parameters['inodeURL'], undefined);
      offer.parameters['inodeURL'] = 'file:///var/run/netns/app';
      return next.request(ctx, r);
    },
    close: (ctx, c, next) => next.close(ctx, c),
  };
  const chain = buildChain('c', [kernelClient({ forwarder }), nse, endpoint()]);
  await chain.request(testContext(), req('c1', []));
  const inside = host.ns('app').links.find((l) => l.name.startsWith('nsm-'));
  t.deepEqual(inside?.addresses, ['169.254.0.2/32']);
});

/** Counts the forwarder's set calls (setEntry goes through setEntries). */
function countSets(forwarder: Forwarder): { sets: number; fail: boolean } {
  const counter = { sets: 0, fail: false };
  const setEntries = forwarder.setEntries.bind(forwarder);
  forwarder.setEntries = (entries) => {
    counter.sets++;
    if (counter.fail) {
      counter.fail = false;
      return Promise.reject(new AgentError('EXEC_FAILED', 'apply failed'));
    }
    return setEntries(entries);
  };
  return counter;
}

test('the KERNEL and WIREGUARD elements of one request share one apply, set by the outer one', async (t) => {
  const { forwarder, host, wg } = await setup(t);
  const counter = countSets(forwarder);
  // The client's host: kernelServer towards the local workload, wireguardClient towards the remote.
  const chain = buildChain('c', [
    kernelServer({ forwarder }),
    wireguardClient(wgOptions(forwarder)),
    endpoint({ answerWireguard: true }),
  ]);
  const conn = await chain.request(
    testContext(),
    req('c1', [create(MechanismSchema, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'x' } })]),
  );
  t.is(counter.sets, 1, 'one apply for both entries');
  t.deepEqual(Object.keys(forwarder.desired.entries).sort(), ['c1/kernel-server', 'c1/wireguard-client']);
  t.deepEqual(host.ns('host').links.find((l) => l.name === 'nsm-wg0')?.addresses, ['169.254.0.1/32']);
  t.deepEqual((await wg.show('nsm-wg0'))?.peers[0]?.allowedIps, ['169.254.0.2/32']);
  t.true(host.ns('host').routes.some((r) => r.dst === '169.254.0.2/32' && r.dev === 'nsm-wg0'));

  // The endpoint's host: wireguardServer from the remote, kernelClient towards the local endpoint
  // (with the agent's mechanism translation between them: the next hop gets its own mechanism).
  const translation: ChainElement = {
    name: 'translation',
    async request(ctx, r, next) {
      const incoming = r.connection?.mechanism;
      if (r.connection) r.connection.mechanism = undefined;
      const c = await next.request(ctx, { ...r, mechanismPreferences: [] });
      c.mechanism = incoming;
      return c;
    },
    close: (ctx, c, next) => next.close(ctx, c),
  };
  const served = buildChain('s', [
    wireguardServer(wgOptions(forwarder)),
    translation,
    kernelClient({ forwarder }),
    endpoint(),
  ]);
  counter.sets = 0;
  await served.request(testContext(), req('c2', [offerFromRemote()]));
  t.is(counter.sets, 1);
  t.truthy(forwarder.entry('c2/wireguard-server'));
  t.truthy(forwarder.entry('c2/kernel-client'));

  counter.sets = 0;
  await chain.close(testContext(), conn);
  t.is(counter.sets, 1, 'close removes both entries in one apply too');
  t.deepEqual(Object.keys(forwarder.desired.entries).sort(), ['c2/kernel-client', 'c2/wireguard-server']);
});

test('an entry staged further down is never applied when an element between fails', async (t) => {
  const { forwarder, wg } = await setup(t);
  const counter = countSets(forwarder);
  const closes: string[] = [];
  const chain = buildChain('c', [
    kernelServer({ forwarder }),
    failAfter(),
    wireguardClient(wgOptions(forwarder)),
    endpoint({ answerWireguard: true, closes }),
  ]);
  await t.throwsAsync(
    chain.request(
      testContext(),
      req('c1', [create(MechanismSchema, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'x' } })]),
    ),
    { message: /later element refused/ },
  );
  t.is(counter.sets, 0, 'nothing was applied');
  t.deepEqual(forwarder.desired.entries, {});
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
});

test('when the shared apply fails, the outer element undoes its entry and closes the inner one', async (t) => {
  const { forwarder, host, wg } = await setup(t);
  const counter = countSets(forwarder);
  const closes: string[] = [];
  const chain = buildChain('c', [
    kernelServer({ forwarder }),
    wireguardClient(wgOptions(forwarder)),
    endpoint({ answerWireguard: true, closes }),
  ]);
  counter.fail = true;
  await t.throwsAsync(
    chain.request(
      testContext(),
      req('c1', [create(MechanismSchema, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'x' } })]),
    ),
    { message: /apply failed/ },
  );
  t.deepEqual(closes, ['c1'], 'what was set up after the outer element is closed');
  t.deepEqual(forwarder.desired.entries, {});
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
  t.deepEqual(host.ns('host').links.find((l) => l.name === 'nsm-wg0')?.addresses, []);
});

test('a Close that fails further down still removes every entry of the connection, in one apply', async (t) => {
  const { forwarder, host, wg } = await setup(t);
  const counter = countSets(forwarder);
  let failClose = false;
  const remote: ChainElement = {
    name: 'remote',
    request: (ctx, r, next) => next.request(ctx, r),
    close: (ctx, c, next) =>
      failClose ? Promise.reject(new AgentError('UNAVAILABLE', 'remote gone')) : next.close(ctx, c),
  };
  const chain = buildChain('c', [
    kernelServer({ forwarder }),
    wireguardClient(wgOptions(forwarder)),
    remote,
    endpoint({ answerWireguard: true }),
  ]);
  const conn = await chain.request(
    testContext(),
    req('c1', [create(MechanismSchema, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'x' } })]),
  );
  counter.sets = 0;
  failClose = true;
  await t.throwsAsync(chain.close(testContext(), conn), { message: /remote gone/ });
  t.is(counter.sets, 1);
  t.deepEqual(forwarder.desired.entries, {});
  t.deepEqual((await wg.show('nsm-wg0'))?.peers, []);
  t.deepEqual(host.ns('host').routes, []);
  t.deepEqual(host.ns('host').links.find((l) => l.name === 'nsm-wg0')?.addresses, []);
});
