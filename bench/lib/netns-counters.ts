// Counters read inside a netns: UDP receive errors from /proc/net/snmp (which shows the counters of
// the reader's netns) and per-link drops from `ip -s -json link`; per-netns sysctls read and written
// through /proc/sys inside the netns (never the root namespace's).
import type { CommandRunner } from '../../src/host/command-runner.js';

export interface UdpCounters {
  readonly inDatagrams: number;
  readonly inErrors: number;
  readonly rcvbufErrors: number;
  readonly sndbufErrors: number;
}

export interface LinkCounters {
  readonly rxPackets: number;
  readonly rxDropped: number;
  readonly txPackets: number;
  readonly txDropped: number;
}

export function parseSnmpUdp(text: string): UdpCounters {
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(/\s+/).slice(1);
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number);
  const get = (n: string): number => values[names.indexOf(n)] ?? 0;
  return {
    inDatagrams: get('InDatagrams'),
    inErrors: get('InErrors'),
    rcvbufErrors: get('RcvbufErrors'),
    sndbufErrors: get('SndbufErrors'),
  };
}

export async function readUdpCounters(runner: CommandRunner, netns: string): Promise<UdpCounters> {
  const r = await runner.runChecked(['cat', '/proc/net/snmp'], { netns });
  return parseSnmpUdp(r.stdout);
}

export async function readLinkCounters(
  runner: CommandRunner,
  netns: string,
  dev: string,
): Promise<LinkCounters> {
  const r = await runner.runChecked(['ip', '-n', netns, '-s', '-json', 'link', 'show', 'dev', dev]);
  const doc = JSON.parse(r.stdout) as {
    stats64?: { rx?: Record<string, number>; tx?: Record<string, number> };
  }[];
  const s = doc[0]?.stats64;
  return {
    rxPackets: s?.rx?.['packets'] ?? 0,
    rxDropped: s?.rx?.['dropped'] ?? 0,
    txPackets: s?.tx?.['packets'] ?? 0,
    txDropped: s?.tx?.['dropped'] ?? 0,
  };
}

export function diffCounters<T extends object>(before: T, after: T): T {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    out[k] = (v as number) - ((before as Record<string, number>)[k] ?? 0);
  }
  return out as T;
}

/** `net.core.rmem_default` → `/proc/sys/net/core/rmem_default`. */
function sysctlPath(key: string): string {
  if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`not a sysctl name: ${key}`);
  return `/proc/sys/${key.replaceAll('.', '/')}`;
}

export async function readNetnsSysctl(runner: CommandRunner, netns: string, key: string): Promise<string> {
  return (await runner.runChecked(['cat', sysctlPath(key)], { netns })).stdout.trim();
}

/**
 * Writes a sysctl inside the (non-root) netns. Inside such a netns /proc/sys/net lists only the
 * keys the kernel keeps per netns, so a global key is not there to be written: the write fails
 * instead of changing the whole machine.
 */
export async function writeNetnsSysctl(
  runner: CommandRunner,
  netns: string,
  key: string,
  value: string,
): Promise<void> {
  if (netns === '') throw new Error('refusing to write a sysctl outside a benchmark netns');
  await runner.runChecked(['tee', sysctlPath(key)], { netns, input: `${value}\n` });
}

/** Sets sysctls inside the netns for the duration of fn, then puts the old values back. */
export async function withNetnsSysctls<T>(
  runner: CommandRunner,
  netns: string,
  values: Readonly<Record<string, string>>,
  fn: () => Promise<T>,
): Promise<T> {
  const old: [string, string][] = [];
  try {
    for (const [k, v] of Object.entries(values)) {
      old.push([k, await readNetnsSysctl(runner, netns, k)]);
      await writeNetnsSysctl(runner, netns, k, v);
    }
    return await fn();
  } finally {
    for (const [k, v] of old.reverse()) await writeNetnsSysctl(runner, netns, k, v);
  }
}

export interface SocketBuffers {
  /** SO_RCVBUF as the kernel holds it (`skmem` rb), bytes. */
  readonly rcvbuf: number;
  readonly sndbuf: number;
}

/** The largest buffers among the UDP sockets bound to `port` in the netns (`ss -uam`). */
export async function readUdpSocketBuffers(
  runner: CommandRunner,
  netns: string,
  port: number,
): Promise<SocketBuffers | undefined> {
  const r = await runner.run(['ss', '-Huanm', `sport = :${port}`], { netns });
  return parseSsSkmem(r.stdout);
}

export function parseSsSkmem(text: string): SocketBuffers | undefined {
  let best: SocketBuffers | undefined;
  for (const m of text.matchAll(/skmem:\(r\d+,rb(\d+),t\d+,tb(\d+)/g)) {
    const b = { rcvbuf: Number(m[1]), sndbuf: Number(m[2]) };
    if (best === undefined || b.rcvbuf > best.rcvbuf) best = b;
  }
  return best;
}
