import { existsSync, readFileSync, statSync } from 'node:fs';
import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { MemoryWireGuard } from '../../../src/host/fake/memory-wireguard.js';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import type { RecordedCall } from '../../../src/host/fake/recording-runner.js';
import type { RunResult } from '../../../src/host/command-runner.js';
import { SequenceRandom } from '../../../src/host/fake/random.js';
import {
  KernelWireGuard,
  UserspaceWireGuard,
  chooseBackend,
  detectBackend,
  keyToHex,
  parseWireGuardGoArgv,
  wireguardGoEnv,
} from '../../../src/host/wireguard/index.js';

const priv = '6MV8TtALvgNzd5sR+uLbfd5GwV9ukK25RrEh1J6vTlE=';
const pub = 'DdPiPIErSDU4PSqhfjepN2GjPCeQEe1uq/sJz2umsW8=';
const peerA = 'iNqrzvbg+Y0mDZU5lhDAjts6PEHjt14TdZYjh0HrcRY=';

/** Replies to `wg set … private-key <file>` by reading the file while it exists, as wg would. */
function readKeyFile(seen: {
  content?: string;
  mode?: number;
  path?: string;
}): (call: RecordedCall) => Partial<RunResult> {
  return (call) => {
    const path = call.argv[call.argv.indexOf('private-key') + 1] ?? '';
    seen.path = path;
    seen.content = readFileSync(path, 'utf8');
    seen.mode = statSync(path).mode & 0o777;
    return {};
  };
}

test('kernel: ensureDevice creates the link, passes the private key in a 0600 file it then removes, sets MTU and up', async (t) => {
  const seen: { content?: string; mode?: number; path?: string } = {};
  const runner = new RecordingRunner()
    .on('ip -n h1 -json -details link show dev wg0', { code: 1, stderr: 'Device "wg0" does not exist.\n' })
    .on(/ wg set wg0 listen-port/, readKeyFile(seen));
  await new KernelWireGuard({ runner, netns: 'h1' }).ensureDevice('wg0', {
    privateKey: priv,
    listenPort: 51820,
    mtu: 1380,
  });
  t.deepEqual(runner.lines, [
    'ip -n h1 -json -details link show dev wg0',
    'ip -n h1 link add wg0 type wireguard',
    `ip netns exec h1 wg set wg0 listen-port 51820 private-key ${seen.path ?? ''}`,
    'ip -n h1 link set dev wg0 mtu 1380 up',
  ]);
  t.is(seen.content, `${priv}\n`);
  t.is(seen.mode, 0o600);
  t.false(existsSync(seen.path ?? ''), 'the key file is removed');
  t.false(runner.lines.some((l) => l.includes(priv) || l.includes(keyToHex(priv))));
  t.false(runner.calls.some((c) => c.input?.includes(priv) === true));
});

test('kernel: the key file is removed when wg fails too', async (t) => {
  const seen: { path?: string } = {};
  const runner = new RecordingRunner().on(/^wg set/, (call) => {
    readKeyFile(seen)(call);
    return { code: 1, stderr: 'Unable to modify interface: Address in use\n' };
  });
  runner.on('ip -json -details link show dev wg0', {
    stdout: '[{"ifname":"wg0","linkinfo":{"info_kind":"wireguard"}}]',
  });
  await t.throwsAsync(
    new KernelWireGuard({ runner }).ensureDevice('wg0', { privateKey: priv, listenPort: 51820 }),
    {
      message: /'wg set wg0' failed with exit code 1: Unable to modify interface: Address in use/,
    },
  );
  t.false(existsSync(seen.path ?? ''));
});

test('kernel: an existing WireGuard link is reused; another kind of link is a clear error', async (t) => {
  const wgLink = JSON.stringify([
    {
      ifindex: 5,
      ifname: 'wg0',
      flags: [],
      mtu: 1420,
      operstate: 'UNKNOWN',
      linkinfo: { info_kind: 'wireguard' },
    },
  ]);
  const runner = new RecordingRunner().on('ip -json -details link show dev wg0', { stdout: wgLink });
  await new KernelWireGuard({ runner }).ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.is(runner.lines.length, 3);
  t.is(runner.lines[0], 'ip -json -details link show dev wg0');
  t.regex(runner.lines[1] ?? '', /^wg set wg0 listen-port 51820 private-key \/.+\/nsm-wg-\w+\/private\.key$/);
  t.is(runner.lines[2], 'ip link set dev wg0 mtu 1420 up');
  const veth = new RecordingRunner().on('ip -json -details link show dev wg0', {
    stdout: wgLink.replace('wireguard', 'veth'),
  });
  const e = await t.throwsAsync(
    new KernelWireGuard({ runner: veth }).ensureDevice('wg0', { privateKey: priv, listenPort: 1 }),
  );
  t.true(AgentError.is(e, 'ALREADY_EXISTS'));
});

test('kernel: configure with replacePeers removes the peers not declared, in one wg set', async (t) => {
  const dump = `(none)\t${pub}\t51820\toff\n${pub}\t(none)\t10.0.0.9:51820\t10.9.0.0/24\t0\t0\t0\toff\n${peerA}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`;
  const runner = new RecordingRunner().on('wg show wg0 dump', { stdout: dump });
  await new KernelWireGuard({ runner }).configure('wg0', {
    replacePeers: true,
    peers: [
      {
        publicKey: peerA,
        endpoint: '10.0.0.2:51820',
        allowedIps: ['10.1.0.0/24', '10.2.0.0/24'],
        persistentKeepalive: 25,
      },
    ],
  });
  t.deepEqual(runner.transcript, [
    ['wg', 'show', 'wg0', 'dump'],
    [
      'wg',
      'set',
      'wg0',
      'peer',
      pub,
      'remove',
      'peer',
      peerA,
      'endpoint',
      '10.0.0.2:51820',
      'persistent-keepalive',
      '25',
      'allowed-ips',
      '10.1.0.0/24,10.2.0.0/24',
    ],
  ]);
});

test('kernel: show of a missing device is undefined; delete of a missing device does nothing', async (t) => {
  const runner = new RecordingRunner()
    .on('wg show wg9 dump', { code: 1, stderr: 'Unable to access interface: No such device\n' })
    .on('ip -json -details link show dev wg9', { code: 1, stderr: 'Device "wg9" does not exist.\n' });
  const wg = new KernelWireGuard({ runner });
  t.is(await wg.show('wg9'), undefined);
  await wg.deleteDevice('wg9');
  t.deepEqual(runner.lines, ['wg show wg9 dump', 'ip -json -details link show dev wg9']);
});

function userspaceHarness(): {
  runner: RecordingRunner;
  requests: string[];
  started: string[][];
  wg: UserspaceWireGuard;
  running: { value: boolean };
} {
  const runner = new RecordingRunner();
  const requests: string[] = [];
  const started: string[][] = [];
  const running = { value: false };
  const wg = new UserspaceWireGuard({
    runner,
    netns: 'h1',
    socketDir: '/nonexistent-nsm-test/wg',
    logDir: '/nonexistent-nsm-test/log',
    env: { PATH: '/usr/bin', WG_PROCESS_FOREGROUND: '1' },
    clock: new FakeClock(),
    uapi: (path, req) => {
      requests.push(`${path} ${req}`);
      if (!running.value) return Promise.reject(new AgentError('NOT_FOUND', 'no socket'));
      return Promise.resolve(
        req.startsWith('get')
          ? `private_key=${keyToHex(priv)}\nlisten_port=51820\nerrno=0\n\n`
          : 'errno=0\n\n',
      );
    },
    starter: (argv, o) => {
      started.push([
        ...argv,
        `log=${o.logFile}`,
        `fg=${o.env?.['WG_PROCESS_FOREGROUND'] ?? 'unset'}`,
        `LOG_LEVEL=${o.env?.['LOG_LEVEL'] ?? ''}`,
      ]);
      running.value = true;
      return Promise.resolve(process.pid);
    },
    processes: () => Promise.resolve([]),
  });
  return { runner, requests, started, wg, running };
}

test('userspace: ensureDevice starts wireguard-go -f detached in the netns, then configures over UAPI in hex', async (t) => {
  const h = userspaceHarness();
  await h.wg.ensureDevice('nsmt-h1-wg', { privateKey: priv, listenPort: 51820 });
  t.deepEqual(h.started, [
    [
      'ip',
      'netns',
      'exec',
      'h1',
      'wireguard-go',
      '-f',
      'nsmt-h1-wg',
      'log=/nonexistent-nsm-test/log/wireguard-go-nsmt-h1-wg.log',
      'fg=unset',
      'LOG_LEVEL=error',
    ],
  ]);
  const sock = '/nonexistent-nsm-test/wg/nsmt-h1-wg.sock';
  t.deepEqual(h.requests, [
    `${sock} get=1\n\n`,
    `${sock} get=1\n\n`,
    `${sock} set=1\nprivate_key=${keyToHex(priv)}\nlisten_port=51820\n\n`,
  ]);
  t.deepEqual(h.runner.lines, ['ip -n h1 link set dev nsmt-h1-wg mtu 1420 up']);
  // A running device is adopted, not restarted.
  await h.wg.ensureDevice('nsmt-h1-wg', { privateKey: priv, listenPort: 51820 });
  t.is(h.started.length, 1);
});

test('userspace: show parses the UAPI state; configure sends peers; a refused set names errno and the log', async (t) => {
  const h = userspaceHarness();
  h.running.value = true;
  t.like(await h.wg.show('wg0'), { name: 'wg0', publicKey: pub, listenPort: 51820 });
  await h.wg.configure('wg0', { peers: [{ publicKey: peerA, allowedIps: ['10.1.0.0/24'] }] });
  t.regex(
    h.requests.at(-1) ?? '',
    /set=1\npublic_key=[0-9a-f]{64}\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\nallowed_ip=10.1.0.0\/24\n\n$/,
  );
  h.running.value = false;
  t.is(await h.wg.show('wg0'), undefined);
  const refusing = new UserspaceWireGuard({
    runner: new RecordingRunner(),
    uapi: (_path, req) =>
      Promise.resolve(req.startsWith('get') ? `listen_port=1\nerrno=0\n\n` : 'errno=-98\n\n'),
    logDir: '/l',
  });
  await t.throwsAsync(refusing.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 }), {
    message: /errno -98.*listen port is in use.*\/l\/wireguard-go-wg0\.log/,
  });
});

test('userspace: deleteDevice deletes the link in the netns (missing is fine)', async (t) => {
  const h = userspaceHarness();
  h.runner.on('ip -n h1 link del dev wg0', { code: 1, stderr: 'Cannot find device "wg0"\n' });
  await h.wg.deleteDevice('wg0');
  t.deepEqual(h.runner.lines, ['ip -n h1 link del dev wg0']);
});

test('wireguard-go env drops WG_* and defaults LOG_LEVEL; argv parsing finds the device', (t) => {
  t.deepEqual(
    wireguardGoEnv({ PATH: '/bin', WG_PROCESS_FOREGROUND: '1', WG_TUN_FD: '3', LOG_LEVEL: 'debug' }),
    { PATH: '/bin', LOG_LEVEL: 'debug' },
  );
  t.is(parseWireGuardGoArgv(['wireguard-go', '-f', 'nsmt-h1-wg']), 'nsmt-h1-wg');
  t.is(parseWireGuardGoArgv(['/usr/bin/wireguard-go', 'wg0']), 'wg0');
  t.is(parseWireGuardGoArgv(['ip', 'netns', 'exec']), undefined);
});

test('detectBackend: kernel when a throwaway wireguard link can be made (and is deleted)', async (t) => {
  const runner = new RecordingRunner();
  t.is(
    await detectBackend({ runner, random: new SequenceRandom(), canOpen: () => Promise.resolve(true) }),
    'kernel',
  );
  t.deepEqual(runner.lines.slice(0, 2), [
    'ip link add nsmwgp00010203 type wireguard',
    'ip link del nsmwgp00010203',
  ]);
});

test('detectBackend: userspace when the kernel has no WireGuard but wireguard-go and /dev/net/tun exist', async (t) => {
  const runner = new RecordingRunner()
    .on('ip link add*', { code: 2, stderr: 'Error: Unknown device type.\n' })
    .on('wireguard-go --version', { stdout: 'wireguard-go v0.0.20220316\n' });
  t.is(await detectBackend({ runner, canOpen: () => Promise.resolve(true) }), 'userspace');
  t.false(runner.lines.some((l) => l.startsWith('ip link del')));
});

test('detectBackend: neither is a clear error with the fix; preferences are honoured', (t) => {
  const none = { kernel: false, kernelError: 'Error: Unknown device type.', wireguardGo: false, tun: true };
  const e = t.throws(() => chooseBackend(none, 'auto'));
  t.true(AgentError.is(e, 'FAILED_PRECONDITION'));
  t.regex(e.message, /modprobe wireguard.*apt install wireguard-go/);
  t.throws(() => chooseBackend({ ...none, wireguardGo: true }, 'kernel'), {
    message: /kernel WireGuard is not available/,
  });
  t.is(chooseBackend({ kernel: true, wireguardGo: true, tun: true }, 'userspace'), 'userspace');
  t.throws(() => chooseBackend({ kernel: false, wireguardGo: true, tun: false }, 'auto'), {
    message: /\/dev\/net\/tun cannot be opened/,
  });
});

test('memory WireGuard: same semantics as the real ones, with injected failures', async (t) => {
  const wg = new MemoryWireGuard();
  await t.throwsAsync(wg.configure('wg0', { peers: [] }), { message: /does not exist/ });
  await wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  await wg.configure('wg0', {
    peers: [{ publicKey: peerA, endpoint: '10.0.0.2:51820', allowedIps: ['10.1.0.0/24'] }],
  });
  await wg.configure('wg0', { peers: [{ publicKey: pub, allowedIps: [] }] });
  wg.setPeerStats('wg0', peerA, { lastHandshakeMs: 5, rxBytes: 1 });
  t.deepEqual(
    (await wg.show('wg0'))?.peers.map((p) => [p.publicKey, p.allowedIps, p.lastHandshakeMs]),
    [
      [peerA, ['10.1.0.0/24'], 5],
      [pub, [], 0],
    ],
  );
  await wg.configure('wg0', {
    peers: [{ publicKey: peerA, allowedIps: ['10.2.0.0/24'] }],
    replacePeers: true,
  });
  t.like((await wg.show('wg0'))?.peers, [
    { publicKey: peerA, endpoint: '10.0.0.2:51820', allowedIps: ['10.2.0.0/24'], rxBytes: 1 },
  ]);
  wg.failNext('configure');
  await t.throwsAsync(wg.configure('wg0', { peers: [], replacePeers: true }), { message: /injected/ });
  t.is((await wg.show('wg0'))?.peers.length, 1);
  await wg.deleteDevice('wg0');
  await wg.deleteDevice('wg0');
  t.deepEqual(wg.devices, []);
  t.is(wg.ops.length, 6);
});
