import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  Forwarder,
  emptyDesiredState,
  ownedLinkName,
  recordPath,
  removalGroup,
  withEntry,
} from '../../../src/forwarder/index.js';
import type { ApplyStep, DesiredState, ForwarderOp } from '../../../src/forwarder/index.js';
import { MemoryWireGuard, RecordingRunner } from '../../../src/host/fake/index.js';
import type { NetnsRef } from '../../../src/host/index.js';
import { FakeHost, FakeHostWireGuard } from './fake-host.js';
import { device, otherPeerKey, peerKey, twoConnections } from './fixtures.js';

const veth = ownedLinkName({ prefix: 'nsm', proto: 252 }, 'c2/kernel');

async function setup(
  t: { teardown: (f: () => Promise<void>) => void },
  onStep?: (s: ApplyStep) => void | Promise<void>,
) {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-fwd-unit-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const host = new FakeHost(['host', 'app']);
  const wg = new FakeHostWireGuard(host);
  const make = (step?: (s: ApplyStep) => void | Promise<void>): Forwarder =>
    new Forwarder({ runner: host, wireguard: wg, stateDir, ...(step === undefined ? {} : { onStep: step }) });
  return { stateDir, host, wg, make, fwd: make(onStep) };
}

test('first apply on an empty host: the transcript in safe order, one ip -batch per netns and stage (host stages in a row share one)', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-fwd-unit-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const runner = new RecordingRunner();
  const wg = new MemoryWireGuard();
  const fwd = new Forwarder({ runner, wireguard: wg, stateDir });
  await fwd.apply(twoConnections);
  t.deepEqual(runner.lines, [
    // the reads: one process per netns
    'ip -json -batch -',
    'ip -n app -json -batch -',
    `ip -batch -`,
    'ip -n app -batch -',
    'ip -batch -',
    'ip -n app -batch -',
    // proxies and routes on the host: consecutive, so one process, in stage order
    'ip -batch -',
    'ip -n app -batch -',
  ]);
  t.deepEqual(
    runner.calls.filter((c) => c.input !== undefined).map((c) => c.input?.trim().split('\n')),
    [
      ['addr show', 'route show table all proto 252', 'neigh show proxy'],
      ['addr show', 'route show table all proto 252'],
      [
        `link add ${veth} mtu 1420 type veth peer name nsm0 mtu 1420 netns app`,
        `link set dev ${veth} up`,
        `ntable change name arp_cache dev ${veth} proxy_delay 0`,
      ],
      ['link set dev nsm0 up'],
      ['addr replace 169.254.0.1/32 dev nsm-wg0'],
      ['addr replace 169.254.1.1/32 dev nsm0'],
      [
        `neigh replace proxy 169.254.1.2 dev ${veth}`,
        'route add 169.254.0.2/32 dev nsm-wg0 proto 252',
        `route add 169.254.1.1/32 dev ${veth} proto 252`,
        'route add 169.254.1.2/32 dev nsm-wg0 proto 252',
      ],
      [
        'route add 169.254.1.2/32 dev nsm0 proto 252',
        'route add 10.60.0.0/16 via 169.254.1.2 dev nsm0 proto 252 onlink',
      ],
    ],
  );
  t.deepEqual(wg.ops, [
    'ensureDevice nsm-wg0 port=51820 mtu=1420',
    `configure nsm-wg0 peers=${peerKey.slice(0, 8)}[169.254.0.2/32,169.254.1.2/32]`,
  ]);
});

test('apply twice with the same state: the second issues no mutating command', async (t) => {
  const { host, wg, fwd } = await setup(t);
  const first = await fwd.apply(twoConnections);
  t.true(first.ops.length > 0);
  host.calls.length = 0;
  const wgOps = wg.ops.length;
  const second = await fwd.apply(twoConnections);
  t.deepEqual(second.ops, []);
  t.deepEqual(host.mutations, []);
  t.is(wg.ops.length, wgOps);
});

test('removing an entry removes only its objects, routes before addresses before links, peer kept for the other', async (t) => {
  const { host, wg, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  host.calls.length = 0;
  const r = await fwd.apply(
    withEntry(withEntry(twoConnections, 'c2/kernel', undefined), 'c2/wireguard', undefined),
  );
  t.deepEqual(
    r.ops.map((o) =>
      o.op === 'ip-batch' ? `${o.stage} ${o.commands.map((c) => c.join(' ')).join('; ')}` : o.op,
    ),
    [
      `peers-set`,
      `remove-routes route del 169.254.1.1/32 dev ${veth} proto 252; route del 169.254.1.2/32 dev nsm-wg0 proto 252`,
      `remove-routes route del 169.254.1.2/32 dev nsm0 proto 252; route del 10.60.0.0/16 dev nsm0 proto 252`,
      `remove-proxies neigh del proxy 169.254.1.2 dev ${veth}`,
      `remove-links link del dev ${veth}`,
    ],
  );
  t.deepEqual(
    (await wg.show('nsm-wg0'))?.peers.map((p) => p.allowedIps),
    [['169.254.0.2/32']],
  );
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );
  t.deepEqual(
    host
      .ns('host')
      .links.map((l) => l.name)
      .sort(),
    ['lo', 'nsm-wg0'],
  );
});

test("the device's last IPv4 address going puts the other connections' IPv4 routes through it back in the same batch; a remaining address or IPv6 needs none", async (t) => {
  const { host, fwd } = await setup(t);
  const describe = (ops: readonly ForwarderOp[]): string[] =>
    ops.map((o) =>
      o.op === 'ip-batch' ? `${o.stage} ${o.commands.map((c) => c.join(' ')).join('; ')}` : o.op,
    );
  const wgRoutes = (): string[] =>
    host
      .ns('host')
      .routes.filter((r) => r.dev === 'nsm-wg0')
      .map((r) => r.dst)
      .sort();
  const withV6 = withEntry(twoConnections, 'c2/wireguard', {
    kind: 'tunnel',
    peerPublicKey: peerKey,
    endpoint: '10.0.0.2:51820',
    remotePrefixes: ['169.254.1.2/32', 'fd00:1::2/128'],
  });
  await fwd.apply(withV6);
  t.deepEqual(wgRoutes(), ['169.254.0.2/32', '169.254.1.2/32', 'fd00:1::2/128']);

  // setEntries (planned from the host as the last apply left it, over the entries that matter).
  const r = await fwd.setEntries(
    new Map([
      ['c1/kernel', undefined],
      ['c1/wireguard', undefined],
    ]),
  );
  t.deepEqual(describe(r.ops), [
    'peers-set',
    'remove-routes route del 169.254.0.2/32 dev nsm-wg0 proto 252',
    'remove-addresses addr del 169.254.0.1/32 dev nsm-wg0; route replace 169.254.1.2/32 dev nsm-wg0 proto 252',
  ]);
  t.deepEqual(wgRoutes(), ['169.254.1.2/32', 'fd00:1::2/128'], 'the netns connection keeps its routes');

  // The same through a read of the host (apply).
  await fwd.apply(withV6);
  const read = await fwd.apply(
    withEntry(withEntry(withV6, 'c1/kernel', undefined), 'c1/wireguard', undefined),
  );
  t.deepEqual(describe(read.ops).slice(1), [
    'remove-routes route del 169.254.0.2/32 dev nsm-wg0 proto 252',
    'remove-addresses addr del 169.254.0.1/32 dev nsm-wg0; route replace 169.254.1.2/32 dev nsm-wg0 proto 252',
  ]);
  t.deepEqual(wgRoutes(), ['169.254.1.2/32', 'fd00:1::2/128']);

  // Another host address stays: no route to put back (the other entry is outside the restricted plan).
  await fwd.apply(withEntry(withV6, 'c3/kernel', { kind: 'host', addresses: ['169.254.0.3/32'] }));
  const kept = await fwd.setEntries(new Map([['c1/kernel', undefined]]));
  t.deepEqual(describe(kept.ops), ['remove-addresses addr del 169.254.0.1/32 dev nsm-wg0']);
  t.deepEqual(wgRoutes(), ['169.254.0.2/32', '169.254.1.2/32', 'fd00:1::2/128']);

  // The last IPv6 address going drops no route (Linux keeps IPv6 routes): nothing to put back.
  await fwd.apply(withEntry(withV6, 'c1/kernel', { kind: 'host', addresses: ['fd00:9::1/128'] }));
  const v6 = await fwd.setEntries(new Map([['c1/kernel', undefined]]));
  t.deepEqual(describe(v6.ops), ['remove-addresses addr del fd00:9::1/128 dev nsm-wg0']);
  t.deepEqual(wgRoutes(), ['169.254.0.2/32', '169.254.1.2/32', 'fd00:1::2/128']);
});

test("a workload interface's last IPv4 address going puts its IPv4 routes back in the same batch", async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  const appRoutes = (): string[] =>
    host
      .ns('app')
      .routes.map((r) => `${r.dst} ${r.dev}`)
      .sort();
  const before = appRoutes();
  t.deepEqual(before, ['10.60.0.0/16 nsm0', '169.254.1.2/32 nsm0']);
  const c2 = twoConnections.entries['c2/kernel'];
  if (c2?.kind !== 'netns') throw new Error('fixture: c2/kernel is a netns entry');
  const r = await fwd.setEntry('c2/kernel', { ...c2, addresses: ['fd00:2::1/128'] });
  const app = r.ops.filter((o) => o.op === 'ip-batch' && o.where.kind === 'workload');
  t.deepEqual(
    app.map((o) =>
      o.op === 'ip-batch' ? `${o.stage} ${o.commands.map((c) => c.join(' ')).join('; ')}` : '',
    ),
    [
      'addresses addr replace fd00:2::1/128 dev nsm0',
      'remove-addresses addr del 169.254.1.1/32 dev nsm0; ' +
        'route replace 169.254.1.2/32 dev nsm0 proto 252; ' +
        'route replace 10.60.0.0/16 via 169.254.1.2 dev nsm0 proto 252 onlink',
    ],
  );
  t.deepEqual(appRoutes(), before, 'the workload keeps its routes');
});

test('a peer nobody claims any more is removed after the routes that used it', async (t) => {
  const { wg, fwd } = await setup(t);
  const withOther = withEntry(twoConnections, 'c3/wireguard', {
    kind: 'tunnel',
    peerPublicKey: otherPeerKey,
    remotePrefixes: ['169.254.3.2/32'],
  });
  await fwd.apply(withOther);
  t.is((await wg.show('nsm-wg0'))?.peers.length, 2);
  const r = await fwd.apply(twoConnections);
  t.deepEqual(
    r.ops.map((o) => o.op),
    ['ip-batch', 'peers-remove'],
  );
  t.deepEqual(
    (await wg.show('nsm-wg0'))?.peers.map((p) => p.publicKey),
    [peerKey],
  );
});

test('adopt keeps what is claimed without touching it and removes marked leftovers, nothing else', async (t) => {
  const { host, wg, make } = await setup(t);
  await make().apply(twoConnections);
  // Leftovers of a crashed run (marked) and things that are not ours (unmarked).
  host.ns('host').links.push({ name: 'nsm0badc0de', kind: 'veth', mtu: 1500, up: true, addresses: [] });
  host.ns('host').links.push({ name: 'eth0', kind: '', mtu: 1500, up: true, addresses: ['10.0.0.1/24'] });
  host.ns('host').routes.push({ dst: '10.99.0.0/16', dev: 'nsm-wg0', proto: '252' });
  host.ns('host').routes.push({ dst: '10.98.0.0/16', dev: 'eth0', proto: 'boot' });
  host.calls.length = 0;
  const wgOps = wg.ops.length;
  const r = await make().adopt(twoConnections);
  t.deepEqual(host.mutations, [
    // two stages (routes, then links) in one process
    'ip -batch - <<< route del 10.99.0.0/16 dev nsm-wg0 proto 252; link del dev nsm0badc0de',
  ]);
  t.is(r.ops.length, 2);
  t.is(wg.ops.length, wgOps, 'the device and peers are adopted as they are');
  t.true(host.ns('host').links.some((l) => l.name === 'eth0'));
  t.true(host.ns('host').routes.some((x) => x.dst === '10.98.0.0/16'));
});

test('adopt with an empty desired state removes everything the record names, and the record empties', async (t) => {
  const { host, wg, make, stateDir } = await setup(t);
  await make().apply(twoConnections);
  const r = await make().adopt(emptyDesiredState);
  t.true(r.ops.some((o) => o.op === 'device-delete'));
  t.deepEqual(wg.memory.devices, []);
  t.deepEqual(
    host.ns('host').links.map((l) => l.name),
    ['lo'],
  );
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );
  t.deepEqual(host.ns('host').routes, []);
  t.deepEqual(host.ns('host').proxies, []);
  const record = JSON.parse(await readFile(recordPath(stateDir), 'utf8')) as {
    devices: string[];
    netns: unknown[];
  };
  t.deepEqual([record.devices, record.netns], [[], []]);
  host.calls.length = 0;
  t.deepEqual((await make().adopt(emptyDesiredState)).ops, []);
});

test('a crash after any step: adopt(empty) leaves nothing, adopt(desired) converges and then is quiet', async (t) => {
  const { host, make } = await setup(t);
  // Count the steps of a full apply first.
  const steps: string[] = [];
  await make((s) => {
    steps.push(s.name);
  }).apply(twoConnections);
  t.true(steps.length >= 8, steps.join(' | '));
  await make().apply(emptyDesiredState);
  const crash = new Error('crash');
  for (let k = 0; k < steps.length; k++) {
    for (const after of [emptyDesiredState, twoConnections]) {
      await t.throwsAsync(
        make((s) => {
          if (s.index === k) throw crash;
        }).apply(twoConnections),
        { is: crash },
      );
      const fresh = make();
      await fresh.adopt(after);
      host.calls.length = 0;
      t.deepEqual((await fresh.apply(after)).ops, [], `after a crash at step ${k} (${steps[k]})`);
      if (after === emptyDesiredState) {
        t.deepEqual(
          host.ns('host').links.map((l) => l.name),
          ['lo'],
          `crash at ${k}`,
        );
        t.deepEqual(
          host.ns('app').links.map((l) => l.name),
          ['lo'],
          `crash at ${k}`,
        );
      } else {
        await fresh.apply(emptyDesiredState);
      }
    }
  }
});

test('the state record is written before the first change and names no key', async (t) => {
  const { stateDir, make } = await setup(t);
  let seen = '';
  await make(async (s) => {
    if (s.index === 0) seen = await readFile(recordPath(stateDir), 'utf8');
  }).apply(twoConnections);
  t.regex(seen, /"nsm-wg0"/);
  t.regex(seen, /"app"/);
  t.false(seen.includes(device.privateKey));
});

test('a corrupt record stops adopt with what to do', async (t) => {
  const { stateDir, make } = await setup(t);
  await make().apply(twoConnections);
  await writeFile(recordPath(stateDir), '{"version":');
  const e = await t.throwsAsync(make().adopt(twoConnections));
  t.regex(e.message, /not valid.*remove links named nsm<8 hex>/);
});

test('applies run one at a time; setEntry calls compose', async (t) => {
  const { fwd, wg } = await setup(t);
  await fwd.setDevice(device);
  const entries = Object.entries(twoConnections.entries);
  await Promise.all(entries.map(([k, e]) => fwd.setEntry(k, e)));
  t.deepEqual(Object.keys(fwd.desired.entries).sort(), Object.keys(twoConnections.entries).sort());
  t.deepEqual((await wg.show('nsm-wg0'))?.peers[0]?.allowedIps, ['169.254.0.2/32', '169.254.1.2/32']);
  t.deepEqual((await fwd.apply(twoConnections)).ops, []);
});

test('a failing command names the step, and the next apply continues from the host as it is', async (t) => {
  const { host, fwd } = await setup(t);
  host.failOn = 'route add';
  const e = await t.throwsAsync(fwd.apply(twoConnections));
  t.regex(e.message, /forwarder step 'ip-batch host routes/);
  const r = await fwd.apply(twoConnections);
  t.deepEqual(
    r.ops.map((o) => (o.op === 'ip-batch' ? o.stage : o.op)),
    ['routes', 'routes'],
  );
  t.deepEqual((await fwd.apply(twoConnections)).ops, []);
});

test('device changes: a new MTU is one ip link set, a removed device is deleted', async (t) => {
  const { host, fwd, wg } = await setup(t);
  await fwd.apply(twoConnections);
  host.calls.length = 0;
  const r = await fwd.apply({ ...twoConnections, device: { ...device, mtu: 1380 } });
  // The device, then both ends of the veth follow the new MTU.
  t.deepEqual(
    r.ops.map((o) => o.op),
    ['device-link', 'ip-batch', 'ip-batch'],
  );
  t.deepEqual(host.mutations[0], 'ip link set dev nsm-wg0 mtu 1380');
  const gone: DesiredState = { entries: {} };
  await fwd.apply(gone);
  t.deepEqual(wg.memory.devices, []);
});

test('several links go in one teardown: moved to the removal group, deleted by group', async (t) => {
  const { host, fwd } = await setup(t);
  const pods = (n: number): DesiredState => {
    let s: DesiredState = { device, entries: {} };
    for (let i = 0; i < n; i++) {
      s = withEntry(s, `p${i}/kernel`, {
        kind: 'netns',
        netns: { kind: 'named', name: 'app' },
        ifName: `nsm${i}`,
        addresses: [`169.254.2.${i + 1}/32`],
        routes: [],
      });
    }
    return s;
  };
  await fwd.apply(pods(3));
  const group = String(removalGroup({ prefix: 'nsm', proto: 252 }));
  const r = await fwd.apply(pods(0));
  const links = r.ops.find((o) => o.op === 'ip-batch' && o.stage === 'remove-links');
  const lines = links?.op === 'ip-batch' ? links.commands.map((c) => c.join(' ')) : [];
  t.is(lines.at(-1), `link del group ${group}`);
  t.deepEqual(
    lines.slice(0, -1).sort(),
    [0, 1, 2]
      .map(
        (i) => `link set dev ${ownedLinkName({ prefix: 'nsm', proto: 252 }, `p${i}/kernel`)} group ${group}`,
      )
      .sort(),
  );
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );

  // A link of someone else in that group: one by one instead, and theirs stays.
  await fwd.apply(pods(2));
  host.ns('host').links.push({ name: 'theirs', kind: 'veth', mtu: 1500, up: true, addresses: [], group });
  const r2 = await fwd.apply(pods(0));
  const links2 = r2.ops.find((o) => o.op === 'ip-batch' && o.stage === 'remove-links');
  t.true(links2?.op === 'ip-batch' && links2.commands.every((c) => c[1] === 'del' && c[2] === 'dev'));
  t.true(host.ns('host').links.some((l) => l.name === 'theirs'));
});

test('a crash between moving links to the removal group and deleting it: a wanted link is taken back out', async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  const group = String(removalGroup({ prefix: 'nsm', proto: 252 }));
  const wanted = host.ns('host').links.find((l) => l.name === veth);
  if (wanted !== undefined) wanted.group = group;
  const r = await fwd.apply(twoConnections);
  const links = r.ops.find((o) => o.op === 'ip-batch' && o.stage === 'links');
  t.deepEqual(links?.op === 'ip-batch' ? links.commands : [], [
    ['link', 'set', 'dev', veth, 'group', 'default'],
  ]);
  t.deepEqual((await fwd.apply(twoConnections)).ops, []);
});

test('a roamed peer keeps its new endpoint: re-apply leaves it, other changes to the peer do not reset it', async (t) => {
  const { wg, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  // The peer's packets now come from another address (NAT rebinding); WireGuard follows them.
  const peer = (await wg.show('nsm-wg0'))?.peers[0];
  await wg.memory.configure('nsm-wg0', {
    peers: [{ publicKey: peerKey, endpoint: '10.0.0.77:40000', allowedIps: [...(peer?.allowedIps ?? [])] }],
  });
  t.deepEqual((await fwd.apply(twoConnections)).ops, []);
  const grown = withEntry(twoConnections, 'c4/wireguard', {
    kind: 'tunnel',
    peerPublicKey: peerKey,
    endpoint: '10.0.0.2:51820',
    remotePrefixes: ['169.254.4.2/32'],
  });
  await fwd.apply(grown);
  const after = (await wg.show('nsm-wg0'))?.peers[0];
  t.is(after?.endpoint, '10.0.0.77:40000');
  t.is(after?.allowedIps.length, 3);
  // A changed declaration is applied.
  const moved = withEntry(grown, 'c1/wireguard', {
    kind: 'tunnel',
    peerPublicKey: peerKey,
    endpoint: '10.0.0.9:51820',
    remotePrefixes: ['169.254.0.2/32'],
  });
  await fwd.apply(moved);
  t.is((await wg.show('nsm-wg0'))?.peers[0]?.endpoint, '10.0.0.9:51820');
});

test('a workload netns given by pid is entered with nsenter; one given by another path is refused', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-fwd-unit-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const runner = new RecordingRunner();
  const fwd = new Forwarder({ runner, wireguard: new MemoryWireGuard(), stateDir });
  const entry = (netns: NetnsRef): DesiredState => ({
    device,
    entries: {
      'c/kernel': { kind: 'netns', netns, ifName: 'eth1', addresses: ['169.254.5.1/32'], routes: [] },
    },
  });
  await fwd.apply(entry({ kind: 'pid', pid: 4242 }));
  const pidLines = runner.lines.filter((l) => l.startsWith('nsenter'));
  t.deepEqual(pidLines, [
    'nsenter --net=/proc/4242/ns/net ip -json -batch -',
    'nsenter --net=/proc/4242/ns/net ip -batch -',
    'nsenter --net=/proc/4242/ns/net ip -batch -',
  ]);
  t.true(runner.calls.some((c) => c.input?.includes('netns 4242') === true));
  await t.throwsAsync(fwd.apply(entry({ kind: 'path', path: '/run/docker/netns/abc' })), {
    message: /cannot be entered by name or pid/,
  });
});

test('setEntry calls made before their apply starts share it (one batch for all of them)', async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply({ device, entries: {} });
  const reads = (): number => host.calls.filter((l) => l.includes('addr show')).length;
  const before = reads();
  // Ten connections set up at once: the nine after the first join the apply it queued.
  const sets = Array.from({ length: 10 }, (_, i) =>
    fwd.setEntry(`c${i}/kernel`, { kind: 'host', addresses: [`169.254.9.${i + 1}/32`] }),
  );
  t.deepEqual(fwd.entry('c9/kernel'), { kind: 'host', addresses: ['169.254.9.10/32'] });
  await Promise.all(sets);
  // The apply before succeeded: the shared apply plans from the host as it left it (no read at all).
  t.is(reads() - before, 0);
  t.is(host.mutations.filter((l) => l.includes('-batch')).length, 1);
  t.is(Object.keys(fwd.desired.entries).length, 10);
  const again = await fwd.apply(fwd.desired);
  t.deepEqual(again.ops, []);
});

test('reapply() applies the state current at its turn, never an older one over entries set meanwhile', async (t) => {
  const { fwd } = await setup(t);
  await fwd.apply({ device, entries: {} });
  const setting = fwd.setEntry('c1/kernel', { kind: 'host', addresses: ['169.254.9.1/32'] });
  const repair = fwd.reapply();
  await Promise.all([setting, repair]);
  t.deepEqual(Object.keys(fwd.desired.entries), ['c1/kernel']);
  t.deepEqual((await fwd.reapply()).ops, []);
});

test('an entry that asks for nothing new (an address another entry already put there) runs no command; reapply still reads', async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply({ device, entries: { 'c1/kernel': { kind: 'host', addresses: ['169.254.9.1/32'] } } });
  const before = host.calls.length;
  const r = await fwd.setEntry('c2/kernel', { kind: 'host', addresses: ['169.254.9.1/32'] });
  t.deepEqual(r.ops, []);
  t.is(host.calls.length, before, 'no read, no command');
  t.deepEqual(Object.keys(fwd.desired.entries).sort(), ['c1/kernel', 'c2/kernel']);
  // Removing one of the two keeps the address: still nothing to do.
  await fwd.setEntry('c1/kernel', undefined);
  t.is(host.calls.length, before);
  // Removing the last one takes the address away: an apply.
  const removed = await fwd.setEntry('c2/kernel', undefined);
  t.true(removed.ops.length > 0);
  const reads = host.calls.length;
  await fwd.reapply();
  t.true(host.calls.length > reads, 'drift repair reads the host');
});

const reads = (host: FakeHost): number => host.calls.filter((l) => / show( |$)/.test(l)).length;

test('setEntry after a successful apply plans from the host as that apply left it: no read, same result as a read', async (t) => {
  const { host, wg, fwd } = await setup(t);
  await fwd.apply({ device, entries: {} });
  let shows = 0;
  const show = wg.show.bind(wg);
  wg.show = (name) => {
    shows++;
    return show(name);
  };
  const before = reads(host);
  // Add every entry one by one, change one, then remove them one by one: after each step the host
  // is exactly what a read-plan-apply would have made (a reapply, which reads, has nothing to do).
  const steps: [string, DesiredState['entries'][string] | undefined][] = [
    ...Object.entries(twoConnections.entries),
    ['c3/wireguard', { kind: 'tunnel', peerPublicKey: otherPeerKey, remotePrefixes: ['169.254.2.2/32'] }],
    ['c3/kernel', { kind: 'host', addresses: ['169.254.2.1/32', 'fd00::2:1/128'] }],
    ['c1/kernel', { kind: 'host', addresses: ['169.254.0.9/32'] }],
    ['c2/kernel', undefined],
    ['c1/wireguard', undefined],
    ['c3/wireguard', undefined],
    ['c3/kernel', undefined],
    ['c1/kernel', undefined],
    ['c2/wireguard', undefined],
  ];
  for (const [i, [key, entry]] of steps.entries()) {
    const r = await fwd.setEntry(key, entry);
    t.true(r.ops.length > 0, `${key}: something to do`);
    t.is(reads(host), i === 0 ? before : 0, `${key}: no read of the host`);
    t.is(shows, 0, `${key}: no read of the device`);
    const check = new Forwarder({
      runner: host,
      wireguard: wg,
      stateDir: await mkdtemp(join(tmpdir(), 'nsm-fwd-chk-')),
    });
    const fromRead = await check.apply(fwd.desired);
    t.deepEqual(fromRead.ops, [], `${key}: the host is as a read-plan-apply makes it`);
    // The check read the host; do not count it.
    host.calls.length = 0;
    shows = 0;
  }
  t.deepEqual(host.ns('host').routes, []);
  t.deepEqual(
    host.ns('app').links.map((l) => l.name),
    ['lo'],
  );
});

test("a step that fails on a host changed behind the forwarder's back: setEntry reads the host and converges", async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  // Someone deletes the workload's veth (its netns end goes with it, as in the kernel).
  host.dropLink('host', veth);
  host.dropLink('app', 'nsm0');
  host.ns('app').routes = [];
  const before = reads(host);
  // Removing the entry plans `link del` for a link that is gone: it fails, the host is read, and
  // the plan from what is really there has nothing of that link left to remove.
  const r = await fwd.setEntry('c2/kernel', undefined);
  t.true(reads(host) > before, 'the host was read after the failed step');
  t.false(
    r.ops.some((o) => o.op === 'ip-batch' && o.commands.some((c) => c.includes(veth))),
    'nothing of the gone link is planned',
  );
  t.deepEqual((await fwd.reapply()).ops, []);
  // Adding it back after the read: the veth is made again.
  const again = await fwd.setEntry('c2/kernel', twoConnections.entries['c2/kernel']);
  t.true(again.ops.some((o) => o.op === 'ip-batch' && o.stage === 'links'));
  t.true(host.ns('host').links.some((l) => l.name === veth));
  t.deepEqual((await fwd.reapply()).ops, []);
});

test("drift behind the forwarder's back is repaired by reapply (which reads), not hidden by the assumed host", async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply({ device, entries: {} });
  await fwd.setEntry('c1/kernel', { kind: 'host', addresses: ['169.254.0.1/32'] });
  await fwd.setEntry('c1/wireguard', twoConnections.entries['c1/wireguard']);
  // An address and a route deleted by hand.
  const wg0 = host.ns('host').links.find((l) => l.name === 'nsm-wg0');
  if (wg0 === undefined) return t.fail('no device link');
  wg0.addresses = [];
  host.ns('host').routes = [];
  const r = await fwd.reapply();
  t.deepEqual(
    r.ops.map((o) => (o.op === 'ip-batch' ? o.stage : o.op)),
    ['addresses', 'routes'],
  );
  t.deepEqual(wg0.addresses, ['169.254.0.1/32']);
  t.deepEqual((await fwd.reapply()).ops, []);
  // A step that fails is tried again once from a fresh read (the host may have changed).
  host.failOn = 'addr replace';
  let before = reads(host);
  await fwd.setEntry('c2/kernel', { kind: 'host', addresses: ['169.254.0.5/32'] });
  t.true(reads(host) > before);
  t.deepEqual(wg0.addresses, ['169.254.0.1/32', '169.254.0.5/32']);
  // After an apply that failed, the next setEntry reads the host.
  host.failOn = 'addr replace';
  await t.throwsAsync(
    fwd.apply({
      ...fwd.desired,
      entries: { ...fwd.desired.entries, 'c3/kernel': { kind: 'host', addresses: ['169.254.0.6/32'] } },
    }),
  );
  before = reads(host);
  await fwd.setEntry('c3/kernel', { kind: 'host', addresses: ['169.254.0.6/32'] });
  t.true(reads(host) > before);
  t.deepEqual((await fwd.reapply()).ops, []);
});

test('drift repair that found nothing to do still repairs any later change of what the connections need', async (t) => {
  const { host, wg, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  // Quiet reads: nothing to do, twice (the second one reads the same host as the first).
  t.deepEqual((await fwd.reapply()).ops, []);
  t.deepEqual((await fwd.reapply()).ops, []);
  const wg0 = (): { addresses: string[]; mtu: number; up: boolean } | undefined =>
    host.ns('host').links.find((l) => l.name === 'nsm-wg0');
  const drifts: [string, () => void | Promise<void>][] = [
    ['a host route deleted', () => void (host.ns('host').routes = host.ns('host').routes.slice(1))],
    ['a workload route deleted', () => void (host.ns('app').routes = [])],
    ['a proxy entry deleted', () => void (host.ns('host').proxies = [])],
    ['an address deleted', () => void Object.assign(wg0() ?? {}, { addresses: [] })],
    ['a veth end set down', () => void Object.assign(host.ns('app').links.at(-1) ?? {}, { up: false })],
    [
      "a peer's allowed IPs changed",
      () => wg.configure('nsm-wg0', { peers: [{ publicKey: peerKey, allowedIps: ['169.254.0.2/32'] }] }),
    ],
    [
      'a foreign peer added',
      () => wg.configure('nsm-wg0', { peers: [{ publicKey: otherPeerKey, allowedIps: [] }] }),
    ],
  ];
  for (const [what, drift] of drifts) {
    await drift();
    const r = await fwd.reapply();
    t.true(r.ops.length > 0, `${what}: repaired`);
    t.deepEqual((await fwd.reapply()).ops, [], `${what}: nothing left to do`);
    t.deepEqual((await fwd.reapply()).ops, [], `${what}: still nothing`);
  }
  // The host is as a fresh forwarder reading it would want it.
  const check = new Forwarder({
    runner: host,
    wireguard: wg,
    stateDir: await mkdtemp(join(tmpdir(), 'nsm-fwd-chk-')),
  });
  t.deepEqual((await check.apply(twoConnections)).ops, []);
});

test('random setEntries sequences, planned from the host as the last apply left it over the entries that matter, leave the host as a read-plan-apply would', async (t) => {
  const { host, wg, fwd } = await setup(t);
  host.addNetns('web');
  await fwd.apply({ device, entries: {} });
  // A fixed pseudo-random sequence with much sharing: peers, prefixes, addresses and netns in common.
  let seed = 20261201;
  const rnd = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const prefixes = ['169.254.0.2/32', '169.254.0.3', '10.60.0.0/16', 'fd00::2/128', '169.254.1.1/32'];
  const addresses = ['169.254.1.1/32', '169.254.1.2/32', '169.254.0.9', 'fd00::1/128'];
  const entry = (key: string): DesiredState['entries'][string] => {
    if (key.endsWith('/wireguard'))
      return {
        kind: 'tunnel',
        peerPublicKey: pick([peerKey, otherPeerKey]),
        ...(rnd() < 0.7 ? { endpoint: pick(['10.0.0.2:51820', '10.0.0.3:51820']) } : {}),
        ...(rnd() < 0.3 ? { persistentKeepalive: pick([0, 25]) } : {}),
        remotePrefixes: [pick(prefixes), pick(prefixes)],
      };
    if (rnd() < 0.4) return { kind: 'host', addresses: [pick(addresses)] };
    return {
      kind: 'netns',
      // A connection's workload stays in its netns (moving one makes a plan that fails on the assumed host).
      netns: { kind: 'named', name: Number(key.slice(1, key.indexOf('/'))) % 2 === 0 ? 'app' : 'web' },
      ifName: `nsm${key.slice(1, key.indexOf('/'))}`,
      addresses: [pick(addresses)],
      routes: [pick(prefixes), pick(prefixes)],
    };
  };
  const keys = Array.from({ length: 8 }, (_, i) => [`c${i}/wireguard`, `c${i}/kernel`]).flat();
  let planned = 0;
  for (let step = 0; step < 60; step++) {
    const changes = new Map<string, DesiredState['entries'][string] | undefined>();
    for (let i = 0; i < 1 + Math.floor(rnd() * 3); i++) {
      const key = pick(keys);
      changes.set(key, rnd() < 0.3 ? undefined : entry(key));
    }
    const before = reads(host);
    const r = await fwd.setEntries(changes);
    if (r.ops.length > 0) planned++;
    t.is(reads(host), before, `step ${step}: no read of the host`);
    const check = new Forwarder({
      runner: host,
      wireguard: wg,
      stateDir: await mkdtemp(join(tmpdir(), 'nsm-fwd-chk-')),
    });
    t.deepEqual(
      (await check.apply(fwd.desired)).ops,
      [],
      `step ${step}: the host is as a read-plan-apply makes it`,
    );
  }
  t.true(planned > 30, `most steps changed something (${planned} of 60)`);
});

test('setEntries refuses an interface name another entry has in the same netns, checking only the changed entries', async (t) => {
  const { host, fwd } = await setup(t);
  await fwd.apply(twoConnections);
  const inApp = (ifName: string, address: string): DesiredState['entries'][string] => ({
    kind: 'netns',
    netns: { kind: 'named', name: 'app' },
    ifName,
    addresses: [address],
    routes: [],
  });
  // c2/kernel has nsm0 in app.
  await t.throwsAsync(fwd.setEntry('c3/kernel', inApp('nsm0', '169.254.3.1/32')), {
    message: /entries c2\/kernel and c3\/kernel both want nsm0 in the same netns/,
  });
  t.false(Object.hasOwn(fwd.desired.entries, 'c3/kernel'), 'the refused entry is not in the state');
  await t.throwsAsync(
    fwd.setEntries(
      new Map([
        ['c4/kernel', inApp('nsm4', '169.254.4.1/32')],
        ['c5/kernel', inApp('nsm4', '169.254.5.1/32')],
      ]),
    ),
    { message: /entries c4\/kernel and c5\/kernel both want nsm4/ },
  );
  // Once given up, the name is free.
  await fwd.setEntry('c2/kernel', undefined);
  await fwd.setEntry('c3/kernel', inApp('nsm0', '169.254.3.1/32'));
  t.deepEqual(host.ns('app').links.find((l) => l.name === 'nsm0')?.addresses, ['169.254.3.1/32']);
  // A whole-state apply refuses the same thing.
  await t.throwsAsync(
    fwd.apply({
      ...fwd.desired,
      entries: { ...fwd.desired.entries, 'c6/kernel': inApp('nsm0', '169.254.6.1/32') },
    }),
    { message: /entries c3\/kernel and c6\/kernel both want nsm0/ },
  );
  t.deepEqual((await fwd.reapply()).ops, []);
});
