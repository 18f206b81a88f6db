import { access, constants, readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { configDefaults, loadConfig } from '../config/index.js';
import type { WireGuardBackend } from '../config/index.js';
import { describe } from '../errors/index.js';
import { createSocket } from 'node:dgram';
import { ProcessRunner, isUdpPortFree } from '../host/index.js';
import type { CommandRunner } from '../host/index.js';
import { parseLinks } from '../host/ip/index.js';
import { NativeUdpSocketBuffers } from '../host/socket-buffers/index.js';
import { chooseBackend, listWireGuardGoProcesses, probeBackends } from '../host/wireguard/index.js';
import type { BackendProbe } from '../host/wireguard/index.js';
import { globalOptions, printJson } from './cli-io.js';
import { userspaceDataPath } from './doctor-userspace.js';
import type { UserspaceDoctorHost } from './doctor-userspace.js';
import type { CliIo } from './cli-io.js';
import { ExitCode, SilentExit } from './exit-codes.js';
import { positiveInteger } from './option-parsers.js';

/** One finding. `fail` on a required check makes doctor exit 1; `warn` is advice. */
export interface DoctorCheck {
  readonly name: string;
  readonly status: 'ok' | 'warn' | 'fail';
  readonly required: boolean;
  /** What was found. */
  readonly detail: string;
  /** What to do about it; present unless the status is ok. */
  readonly fix?: string;
}

export interface DoctorReport {
  /** True when every required check passed. */
  readonly ok: boolean;
  readonly checks: readonly DoctorCheck[];
}

/** What doctor looks at; the real one is built only when the command runs, tests pass a fake. */
export interface DoctorHost extends UserspaceDoctorHost {
  readonly runner: CommandRunner;
  /** The file's text, or undefined when it cannot be read. */
  readFile(path: string): Promise<string | undefined>;
  canOpen(path: string): Promise<boolean>;
  udpPortFree(port: number): Promise<boolean>;
  now(): number;
  uid(): number;
}

export interface DoctorOptions {
  readonly port: number;
  readonly interface: string;
  readonly backend: WireGuardBackend;
  /** A config problem found while reading the settings above (they are then the defaults). */
  readonly configProblem?: string;
}

export function systemDoctorHost(): DoctorHost {
  const buffers = new NativeUdpSocketBuffers();
  return {
    runner: new ProcessRunner(),
    readFile: (p) => readFile(p, 'utf8').catch(() => undefined),
    canOpen: (p) =>
      access(p, constants.R_OK | constants.W_OK).then(
        () => true,
        () => false,
      ),
    udpPortFree: isUdpPortFree,
    now: () => Date.now(),
    uid: () => process.getuid?.() ?? -1,
    probeSocketBuffers: async () => {
      const socket = createSocket('udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(0, '127.0.0.1', resolve);
        });
        if ((await buffers.ensure(process.pid, 0)).length === 0) {
          throw new Error("the helper did not see doctor's own UDP socket");
        }
      } finally {
        socket.close();
      }
    },
    wireguardGoBuffers: async (device) => {
      const pid = (await listWireGuardGoProcesses()).find((p) => p.device === device)?.pid;
      return pid === undefined ? undefined : buffers.ensure(pid, 0);
    },
  };
}

/** Runs every check; never throws for what it finds (a probe that crashes is a failed check). */
export async function runDoctor(host: DoctorHost, o: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = async (
    name: string,
    required: boolean,
    f: () => Promise<Omit<DoctorCheck, 'name' | 'required'>>,
  ): Promise<void> => {
    try {
      const found = await f();
      // What an optional check finds wrong is advice, not a failure.
      checks.push({
        name,
        required,
        ...found,
        status: found.status === 'fail' && !required ? 'warn' : found.status,
      });
    } catch (e: unknown) {
      checks.push({
        name,
        required,
        status: 'fail',
        detail: `the check itself failed: ${describe(e)}`,
        fix: 'run nsm-agent doctor as root',
      });
    }
  };
  if (o.configProblem !== undefined) {
    checks.push({
      name: 'config',
      required: true,
      status: 'fail',
      detail: o.configProblem,
      fix: 'nsm-agent config validate shows every problem; the checks below use the defaults',
    });
  }
  await add('privileges', true, () => Promise.resolve(privileges(host.uid())));
  let probe: BackendProbe | undefined;
  await add('wireguard', true, async () => {
    probe = await probeBackends({ runner: host.runner, canOpen: (p) => host.canOpen(p) });
    return wireguard(probe, o.backend);
  });
  await add('tun', probe?.kernel !== true, () => Promise.resolve(tun(probe)));
  if (probe !== undefined && usesUserspace(probe, o.backend)) {
    const p = probe;
    await add('wireguard-go-buffers', false, async () =>
      userspaceDataPath(host, o.interface, p.wireguardGoVersion, await hasChrt(host.runner)),
    );
  }
  await add('wireguard-tools', probe?.kernel === true && o.backend !== 'userspace', () =>
    wgTools(host.runner),
  );
  await add('iproute2', true, () => iproute2(host.runner));
  await add('ip-forwarding', true, async () =>
    forwarding(await host.readFile('/proc/sys/net/ipv4/ip_forward')),
  );
  await add('udp-port', true, () => udpPort(host, o));
  await add('clock', true, () => Promise.resolve(clockYear(host.now())));
  await add('ntp', false, () => ntp(host.runner));
  return { ok: checks.every((c) => !c.required || c.status !== 'fail'), checks };
}

function privileges(uid: number): Omit<DoctorCheck, 'name' | 'required'> {
  if (uid === 0) return { status: 'ok', detail: 'running as root' };
  return {
    status: 'fail',
    detail: `running as uid ${uid}`,
    fix: 'run the agent (and doctor) as root: it needs CAP_NET_ADMIN to program interfaces',
  };
}

function wireguard(p: BackendProbe, preference: WireGuardBackend): Omit<DoctorCheck, 'name' | 'required'> {
  try {
    const chosen = chooseBackend(p, preference);
    if (chosen === 'kernel') return { status: 'ok', detail: 'kernel WireGuard' };
    const why = p.kernel
      ? 'wireguard.backend is "userspace"'
      : `no kernel WireGuard: ${p.kernelError ?? 'unknown'}`;
    return {
      status: p.kernel ? 'ok' : 'warn',
      detail: `userspace wireguard-go ${p.wireguardGoVersion ?? ''} (${why})`.replace('  ', ' '),
      ...(p.kernel
        ? {}
        : { fix: 'works; for more throughput load the kernel module: modprobe wireguard (Linux 5.6+)' }),
    };
  } catch (e: unknown) {
    return {
      status: 'fail',
      detail: describe(e).split(';')[0] ?? '',
      fix: 'modprobe wireguard (Linux 5.6+), or apt install wireguard-go and make /dev/net/tun available (modprobe tun)',
    };
  }
}

/** `chrt` (util-linux) puts wireguard-go on SCHED_BATCH. */
async function hasChrt(runner: CommandRunner): Promise<boolean> {
  try {
    return (await runner.run(['chrt', '--version'], { timeoutMs: 5_000 })).code === 0;
  } catch {
    return false;
  }
}

/** True when the agent would run wireguard-go here (kernel WireGuard never needs the buffer helper). */
function usesUserspace(p: BackendProbe, preference: WireGuardBackend): boolean {
  try {
    return chooseBackend(p, preference) === 'userspace';
  } catch {
    return false;
  }
}

function tun(p: BackendProbe | undefined): Omit<DoctorCheck, 'name' | 'required'> {
  if (p?.tun === true) return { status: 'ok', detail: '/dev/net/tun can be opened' };
  return {
    status: 'fail',
    detail: '/dev/net/tun cannot be opened (wireguard-go needs it)',
    fix: 'modprobe tun; in a container: --device /dev/net/tun',
  };
}

/** `wg` configures kernel WireGuard; the userspace backend speaks UAPI itself and does not need it. */
async function wgTools(runner: CommandRunner): Promise<Omit<DoctorCheck, 'name' | 'required'>> {
  const fix = 'apt install wireguard-tools (the kernel backend configures devices with wg)';
  try {
    const r = await runner.run(['wg', '--version'], { timeoutMs: 5_000 });
    if (r.code === 0) return { status: 'ok', detail: (r.stdout.trim().split(' - ')[0] ?? 'wg').trim() };
  } catch {
    // not installed
  }
  return { status: 'fail', detail: "'wg' (wireguard-tools) is not installed", fix };
}

async function iproute2(runner: CommandRunner): Promise<Omit<DoctorCheck, 'name' | 'required'>> {
  const fix = 'install iproute2 4.14 or newer (Debian 10+): apt install iproute2';
  let version = 'unknown version';
  try {
    const v = await runner.run(['ip', '-V'], { timeoutMs: 5_000 });
    version = /iproute2-(?:ss)?([\w.]+)/.exec(v.stdout)?.[1] ?? version;
  } catch {
    return { status: 'fail', detail: "'ip' is not installed", fix };
  }
  const r = await runner.run(['ip', '-json', 'link', 'show', 'lo'], { timeoutMs: 5_000 });
  try {
    if (r.code === 0 && parseLinks(r.stdout).length === 1)
      return { status: 'ok', detail: `iproute2 ${version} with -json` };
  } catch {
    // falls through: not JSON
  }
  return { status: 'fail', detail: `iproute2 ${version} has no working 'ip -json'`, fix };
}

function forwarding(text: string | undefined): Omit<DoctorCheck, 'name' | 'required'> {
  const fix =
    'sysctl -w net.ipv4.ip_forward=1, and to keep it: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-nsm-agent.conf';
  if (text === undefined) return { status: 'fail', detail: 'cannot read /proc/sys/net/ipv4/ip_forward', fix };
  if (text.trim() === '1') return { status: 'ok', detail: 'net.ipv4.ip_forward = 1' };
  return {
    status: 'fail',
    detail: `net.ipv4.ip_forward = ${text.trim()} (workloads in their own netns cannot reach the tunnel)`,
    fix,
  };
}

async function udpPort(host: DoctorHost, o: DoctorOptions): Promise<Omit<DoctorCheck, 'name' | 'required'>> {
  if (await host.udpPortFree(o.port)) return { status: 'ok', detail: `UDP ${o.port} is free` };
  // Held by our own device (the agent is running): that is the healthy case.
  const r = await host.runner
    .run(['wg', 'show', o.interface, 'listen-port'], { timeoutMs: 5_000 })
    .catch(() => undefined);
  if (r?.code === 0 && r.stdout.trim() === String(o.port)) {
    return { status: 'ok', detail: `UDP ${o.port} is held by ${o.interface} (the agent's WireGuard device)` };
  }
  return {
    status: 'fail',
    detail: `UDP ${o.port} is in use by another program`,
    fix: `find it with: ss -ulpn 'sport = :${o.port}'; stop it or set wireguard.port in the config`,
  };
}

function clockYear(now: number): Omit<DoctorCheck, 'name' | 'required'> {
  const year = new Date(now).getUTCFullYear();
  const iso = new Date(now).toISOString();
  if (year >= 2024) return { status: 'ok', detail: `system time ${iso}` };
  return {
    status: 'fail',
    detail: `system time ${iso} is in the past: certificates will not validate`,
    fix: 'set the clock (timedatectl set-ntp true, or chronyd/ntpd) and re-run',
  };
}

async function ntp(runner: CommandRunner): Promise<Omit<DoctorCheck, 'name' | 'required'>> {
  let r;
  try {
    r = await runner.run(['timedatectl', 'show', '-p', 'NTPSynchronized', '--value'], { timeoutMs: 5_000 });
  } catch {
    return { status: 'ok', detail: 'timedatectl not available; NTP sync not checked' };
  }
  if (r.code !== 0)
    return {
      status: 'ok',
      detail: `NTP sync not checked (timedatectl: ${r.stderr.trim().split('\n')[0] ?? ''})`,
    };
  if (r.stdout.trim() === 'yes') return { status: 'ok', detail: 'clock synchronised by NTP' };
  return {
    status: 'warn',
    detail: 'clock not synchronised by NTP',
    fix: 'timedatectl set-ntp true (certificate lifetimes and token expiry depend on the clock)',
  };
}

/** Human output: one line per check, the fix under every one that is not ok. */
export function formatDoctor(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.flatMap((c) => {
    const mark = c.status === 'ok' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL';
    const head = `${mark}  ${c.name.padEnd(width)}  ${c.detail}${c.required || c.status === 'ok' ? '' : ' (optional)'}`;
    return c.fix === undefined || c.status === 'ok'
      ? [head]
      : [head, `${' '.repeat(width + 8)}fix: ${c.fix}`];
  });
  const failed = report.checks.filter((c) => c.required && c.status === 'fail').length;
  lines.push(
    report.ok ? 'all required checks passed' : `${failed} required check${failed === 1 ? '' : 's'} failed`,
  );
  return `${lines.join('\n')}\n`;
}

export function doctorCommand(io: CliIo, host: () => DoctorHost = systemDoctorHost): Command {
  return new Command('doctor')
    .summary('check this host for what the agent needs')
    .description(
      'check that this host has what the agent needs (WireGuard, TUN, iproute2, forwarding, UDP port, clock); exit 0 when every required check passes',
    )
    .option(
      '--json',
      'machine-readable JSON on stdout: {ok, checks: [{name, status, required, detail, fix}]}',
    )
    .option(
      '--port <port>',
      'the WireGuard UDP port to check (default: wireguard.port from the config, 51820)',
      udpPortNumber,
    )
    .action(async (opts: { json?: boolean; port?: number }, cmd: Command) => {
      const options = await doctorOptions(globalOptions(cmd, io).configPath, opts.port);
      const report = await runDoctor(host(), options);
      if (opts.json === true) printJson(io, report);
      else io.stdout.write(formatDoctor(report));
      if (!report.ok) throw new SilentExit(ExitCode.failure);
    });
}

async function doctorOptions(configPath: string, port: number | undefined): Promise<DoctorOptions> {
  let o: DoctorOptions = {
    port: configDefaults.wireguardPort,
    interface: configDefaults.wireguardInterface,
    backend: configDefaults.wireguardBackend,
  };
  try {
    const { config } = await loadConfig(configPath);
    o = {
      port: config.wireguard.port,
      interface: config.wireguard.interface,
      backend: config.wireguard.backend,
    };
  } catch (e: unknown) {
    o = { ...o, configProblem: `config ${configPath}: ${describe(e).split('\n')[0] ?? ''}` };
  }
  return port === undefined ? o : { ...o, port };
}

function udpPortNumber(value: string): number {
  const n = positiveInteger(value);
  if (n > 65535) throw new InvalidArgumentError(`expected a port 1..65535, got '${value}'`);
  return n;
}
