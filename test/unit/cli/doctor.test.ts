import test from 'ava';
import { Command } from 'commander';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import { doctorCommand, formatDoctor, runDoctor } from '../../../src/cli/doctor.js';
import type { DoctorHost, DoctorOptions } from '../../../src/cli/doctor.js';
import { exitCodeFor } from '../../../src/cli/exit-codes.js';
import { cli } from './cli-harness.js';

const defaults: DoctorOptions = { port: 51820, interface: 'nsm-wg0', backend: 'auto' };

interface FakeHostSpec {
  kernel?: boolean;
  wireguardGo?: boolean;
  tun?: boolean;
  forward?: string;
  portFree?: boolean;
  year?: number;
  uid?: number;
  ntp?: string;
  wgTools?: boolean;
  /** The buffer helper's self-test throws this. */
  buffersRefused?: Error;
  /** SO_RCVBUF of the running wireguard-go's sockets; absent: not running. */
  wgGoRcvbuf?: number;
  /** Extra files (e.g. /proc/self/status). */
  files?: Record<string, string>;
  chrt?: boolean;
}

function fakeHost(s: FakeHostSpec = {}): { host: DoctorHost; runner: RecordingRunner } {
  const runner = new RecordingRunner()
    .on('ip link add*', s.kernel === false ? { code: 2, stderr: 'Error: Unknown device type.\n' } : {})
    .on(
      'wireguard-go --version',
      s.wireguardGo === false ? { code: 127 } : { stdout: 'wireguard-go v0.0.20220316\n' },
    )
    .on('ip -V', { stdout: 'ip utility, iproute2-6.1.0, libbpf 1.1.2\n' })
    .on('ip -json link show lo', { stdout: '[{"ifindex":1,"ifname":"lo","flags":["UP"],"mtu":65536}]\n' })
    .on('timedatectl*', { stdout: `${s.ntp ?? 'yes'}\n` })
    .on('wg show nsm-wg0 listen-port', { code: 1 })
    .on('chrt --version', s.chrt === false ? { code: 127 } : { stdout: 'chrt from util-linux 2.38.1\n' })
    .on(
      'wg --version',
      s.wgTools === false
        ? { code: 127 }
        : { stdout: 'wireguard-tools v1.0.20210914 - https://git.zx2c4.com/wireguard-tools/\n' },
    );
  const host: DoctorHost = {
    runner,
    readFile: (p) =>
      Promise.resolve(p === '/proc/sys/net/ipv4/ip_forward' ? (s.forward ?? '1\n') : s.files?.[p]),
    canOpen: () => Promise.resolve(s.tun ?? true),
    udpPortFree: () => Promise.resolve(s.portFree ?? true),
    now: () => Date.UTC(s.year ?? 2026, 5, 1),
    uid: () => s.uid ?? 0,
    probeSocketBuffers: () =>
      s.buffersRefused === undefined ? Promise.resolve() : Promise.reject(s.buffersRefused),
    wireguardGoBuffers: () =>
      Promise.resolve(
        s.wgGoRcvbuf === undefined
          ? undefined
          : [{ fd: 7, family: 4, rcvbuf: s.wgGoRcvbuf, sndbuf: s.wgGoRcvbuf, changed: false }],
      ),
  };
  return { host, runner };
}

test('a good host: every check ok', async (t) => {
  const { host } = fakeHost();
  const r = await runDoctor(host, defaults);
  t.true(r.ok);
  t.deepEqual(
    r.checks.map((c) => [c.name, c.status]),
    [
      ['privileges', 'ok'],
      ['wireguard', 'ok'],
      ['tun', 'ok'],
      ['wireguard-tools', 'ok'],
      ['iproute2', 'ok'],
      ['ip-forwarding', 'ok'],
      ['udp-port', 'ok'],
      ['clock', 'ok'],
      ['ntp', 'ok'],
    ],
  );
  t.regex(formatDoctor(r), /all required checks passed\n$/);
});

test('no kernel WireGuard but wireguard-go: a warning, not a failure', async (t) => {
  const r = await runDoctor(fakeHost({ kernel: false }).host, defaults);
  t.true(r.ok);
  const wg = r.checks.find((c) => c.name === 'wireguard');
  t.is(wg?.status, 'warn');
  t.regex(wg?.fix ?? '', /modprobe wireguard/);
});

test('no WireGuard at all, no TUN, forwarding off, port taken, clock in the past, not root: each FAIL has a fix', async (t) => {
  const { host } = fakeHost({
    kernel: false,
    wireguardGo: false,
    tun: false,
    forward: '0\n',
    portFree: false,
    year: 2001,
    uid: 1000,
    ntp: 'no',
  });
  const r = await runDoctor(host, defaults);
  t.false(r.ok);
  const failed = r.checks.filter((c) => c.status === 'fail');
  t.deepEqual(
    failed.map((c) => c.name),
    ['privileges', 'wireguard', 'tun', 'ip-forwarding', 'udp-port', 'clock'],
  );
  for (const c of failed) t.truthy(c.fix, c.name);
  t.like(
    r.checks.find((c) => c.name === 'ntp'),
    { status: 'warn', required: false },
  );
  const text = formatDoctor(r);
  t.regex(text, /FAIL {2}ip-forwarding +net\.ipv4\.ip_forward = 0/);
  t.regex(text, /fix: sysctl -w net\.ipv4\.ip_forward=1/);
  t.regex(text, /fix: find it with: ss -ulpn 'sport = :51820'/);
  t.regex(text, /6 required checks failed\n$/);
});

test('the port held by our own WireGuard device is fine', async (t) => {
  const { host, runner } = fakeHost({ portFree: false });
  runner.once('wg show nsm-wg0 listen-port', { stdout: '51820\n' });
  const r = await runDoctor(host, defaults);
  t.like(
    r.checks.find((c) => c.name === 'udp-port'),
    { status: 'ok' },
  );
});

test('with kernel WireGuard, a missing TUN device is only a warning', async (t) => {
  const r = await runDoctor(fakeHost({ tun: false }).host, defaults);
  t.true(r.ok);
  t.like(
    r.checks.find((c) => c.name === 'tun'),
    { status: 'warn', required: false },
  );
});

test('doctor --json prints the report and exits 1 when a required check fails', async (t) => {
  let out = '';
  const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true }, env: {} };
  const program = new Command('nsm-agent').option('--config <path>').exitOverride();
  program.addCommand(doctorCommand(io, () => fakeHost({ forward: '0' }).host));
  const e = await t.throwsAsync(
    program.parseAsync([
      'node',
      'nsm-agent',
      'doctor',
      '--json',
      '--port',
      '51999',
      '--config',
      '/nonexistent/c.json',
    ]),
  );
  t.is(exitCodeFor(e), 1);
  const report = JSON.parse(out) as { ok: boolean; checks: { name: string; detail: string }[] };
  t.false(report.ok);
  t.regex(report.checks.find((c) => c.name === 'udp-port')?.detail ?? '', /UDP 51999 is free/);
});

test('doctor --port must be a port (usage error)', async (t) => {
  const r = await cli(['doctor', '--port', '70000']);
  t.is(r.code, 2);
  t.regex(r.stderr, /expected a port 1\.\.65535/);
});

test('kernel backend without wireguard-tools fails; with the userspace backend wg is not needed', async (t) => {
  const kernel = await runDoctor(fakeHost({ wgTools: false }).host, defaults);
  t.false(kernel.ok);
  t.like(
    kernel.checks.find((c) => c.name === 'wireguard-tools'),
    { status: 'fail', required: true },
  );
  const userspace = await runDoctor(fakeHost({ wgTools: false, kernel: false }).host, defaults);
  t.true(userspace.ok);
  t.like(
    userspace.checks.find((c) => c.name === 'wireguard-tools'),
    { status: 'warn', required: false },
  );
});

const snmp =
  'Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n' +
  'Udp: 100 0 9 50 9 0 0 0 0\n';
const rootStatus = 'Name:\tnode\nCapEff:\t000001ffffffffff\n';

test('userspace backend: the wireguard-go-buffers check shows version, buffers and drops; not run with kernel WireGuard', async (t) => {
  const files = { '/proc/net/snmp': snmp, '/proc/self/status': rootStatus };
  const good = await runDoctor(
    fakeHost({ kernel: false, wgGoRcvbuf: 8 * 1024 * 1024, files }).host,
    defaults,
  );
  const c = good.checks.find((x) => x.name === 'wireguard-go-buffers');
  t.is(c?.status, 'ok');
  t.is(c?.required, false);
  t.regex(
    c?.detail ?? '',
    /wireguard-go v0\.0\.20220316.*nsm-wg0: SO_RCVBUF 8192 KiB.*RcvbufErrors 9 since boot/,
  );
  const small = await runDoctor(fakeHost({ kernel: false, wgGoRcvbuf: 212_992, files }).host, defaults);
  t.like(
    small.checks.find((x) => x.name === 'wireguard-go-buffers'),
    { status: 'warn' },
  );
  t.regex(small.checks.find((x) => x.name === 'wireguard-go-buffers')?.fix ?? '', /next apply/);
  const kernel = await runDoctor(fakeHost({ files }).host, defaults);
  t.false(kernel.checks.some((x) => x.name === 'wireguard-go-buffers'));
});

test('userspace backend where buffers cannot be sized: a warning that names each cause and its fix', async (t) => {
  const r = await runDoctor(
    fakeHost({
      kernel: false,
      buffersRefused: new Error('pidfd_getfd: Function not implemented'),
      chrt: false,
      files: {
        '/proc/self/status': 'CapEff:\t0000000000001000\n', // CAP_NET_ADMIN only
        '/proc/sys/kernel/yama/ptrace_scope': '3\n',
      },
    }).host,
    defaults,
  );
  t.true(r.ok, 'optional');
  const c = r.checks.find((x) => x.name === 'wireguard-go-buffers');
  t.is(c?.status, 'warn');
  t.regex(c?.detail ?? '', /no CAP_SYS_PTRACE; kernel\.yama\.ptrace_scope = 3.*Function not implemented/);
  t.regex(c?.detail ?? '', /no chrt/);
  t.regex(c?.fix ?? '', /util-linux.*CAP_SYS_PTRACE.*ptrace_scope=1.*Linux >= 5\.6.*modprobe wireguard/);
  t.notRegex(c?.detail ?? '', /CAP_NET_ADMIN/);
});
