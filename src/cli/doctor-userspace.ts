import { describe } from '../errors/index.js';
import { defaultUdpBufferBytes } from '../host/socket-buffers/index.js';
import type { UdpSocketBuffer } from '../host/socket-buffers/index.js';

/** What the userspace check looks at (part of DoctorHost). */
export interface UserspaceDoctorHost {
  readFile(path: string): Promise<string | undefined>;
  /** Proves the native helper loads and pidfd_getfd works here, on a UDP socket of doctor itself. */
  probeSocketBuffers(): Promise<void>;
  /** The UDP sockets of the wireguard-go serving `device`, read only; undefined when none runs. */
  wireguardGoBuffers(device: string): Promise<readonly UdpSocketBuffer[] | undefined>;
}

const capSysPtrace = 19;
const capNetAdmin = 12;
const turnOff = 'until then wireguard-go runs untuned: it works, with less throughput';

/**
 * The userspace data path: which wireguard-go, whether the agent can give its UDP sockets big
 * buffers (native helper, Linux >= 5.6, CAP_SYS_PTRACE + CAP_NET_ADMIN, Yama ptrace_scope < 3) and
 * put it on SCHED_BATCH (chrt), what the running device has, and the UDP receive-buffer drops
 * counted so far.
 */
export async function userspaceDataPath(
  host: UserspaceDoctorHost,
  device: string,
  wireguardGoVersion: string | undefined,
  chrt: boolean,
): Promise<{ status: 'ok' | 'warn'; detail: string; fix?: string }> {
  const parts = [`wireguard-go ${wireguardGoVersion ?? '(version unknown)'}`];
  const problems: { what: string; fix: string }[] = [];
  if (!chrt) {
    problems.push({
      what: 'no chrt, so wireguard-go cannot be put on SCHED_BATCH (about 1/5 less throughput)',
      fix: 'apt install util-linux (chrt)',
    });
  }
  const caps = capEff(await host.readFile('/proc/self/status'));
  const missing = [
    ...(caps !== undefined && !hasCap(caps, capSysPtrace) ? ['CAP_SYS_PTRACE'] : []),
    ...(caps !== undefined && !hasCap(caps, capNetAdmin) ? ['CAP_NET_ADMIN'] : []),
  ];
  if (missing.length > 0) {
    problems.push({
      what: `no ${missing.join(', ')}`,
      fix: `run the agent as root with ${missing.join(' and ')} (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_PTRACE)`,
    });
  }
  const yama = (await host.readFile('/proc/sys/kernel/yama/ptrace_scope'))?.trim();
  if (yama === '3') {
    problems.push({
      what: 'kernel.yama.ptrace_scope = 3 forbids pidfd_getfd',
      fix: 'boot with kernel.yama.ptrace_scope=1 (3 cannot be lowered until a reboot)',
    });
  }
  try {
    await host.probeSocketBuffers();
  } catch (e: unknown) {
    problems.push({
      what: `the buffer helper does not work here: ${describe(e)}`,
      fix: 'see the message; Linux >= 5.6 is needed for pidfd_getfd',
    });
  }
  const sockets = await host.wireguardGoBuffers(device).catch((e: unknown) => {
    parts.push(`${device}: buffers not readable (${describe(e).split(';')[0] ?? ''})`);
    return undefined;
  });
  let small = false;
  if (sockets !== undefined && sockets.length > 0) {
    const rb = Math.min(...sockets.map((s) => s.rcvbuf));
    small = rb < 2 * defaultUdpBufferBytes;
    parts.push(`${device}: SO_RCVBUF ${Math.round(rb / 1024)} KiB`);
  } else if (sockets !== undefined) {
    parts.push(`${device}: no UDP socket yet`);
  } else {
    parts.push(`${device} not running`);
  }
  const errors = udpRcvbufErrors(await host.readFile('/proc/net/snmp'));
  if (errors !== undefined) parts.push(`UDP RcvbufErrors ${errors} since boot`);
  if (problems.length === 0 && !small) {
    return {
      status: 'ok',
      detail: [...parts, 'UDP buffers can be sized (4 MiB), SCHED_BATCH can be set'].join('; '),
    };
  }
  if (problems.length === 0) {
    return {
      status: 'warn',
      detail: [...parts, 'smaller than the 4 MiB the agent sets'].join('; '),
      fix: `the agent sizes them on its next apply of ${device} (restart it if it is not running); wireguard-go may have rebound its sockets`,
    };
  }
  return {
    status: 'warn',
    detail: [...parts, `not tuned: ${problems.map((p) => p.what).join('; ')}`].join('; '),
    fix: `${problems.map((p) => p.fix).join('; ')}; or load kernel WireGuard (modprobe wireguard); ${turnOff}`,
  };
}

/** CapEff of /proc/<pid>/status as a bigint, or undefined when it cannot be read. */
export function capEff(status: string | undefined): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status ?? '');
  return m?.[1] === undefined ? undefined : BigInt(`0x${m[1]}`);
}

function hasCap(caps: bigint, bit: number): boolean {
  return ((caps >> BigInt(bit)) & 1n) === 1n;
}

/** Udp: RcvbufErrors of /proc/net/snmp (this netns), or undefined when absent. */
export function udpRcvbufErrors(snmp: string | undefined): number | undefined {
  const lines = (snmp ?? '').split('\n').filter((l) => l.startsWith('Udp: '));
  const [head, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const i = head?.indexOf('RcvbufErrors') ?? -1;
  const v = i < 0 ? undefined : values?.[i];
  return v === undefined ? undefined : Number(v);
}
