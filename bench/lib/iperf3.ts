// iperf3 runners: a server started inside a netns (kept by pid), clients run with -J whose JSON
// report is parsed into the figures the benchmark prints.
import type { CommandRunner } from '../../src/host/command-runner.js';
import type { BenchProcesses } from './processes.js';

export interface Iperf3Result {
  /** Received throughput (sum_received), bits per second. */
  readonly bitsPerSecond: number;
  /** TCP retransmissions of the sender. */
  readonly retransmits: number;
  readonly seconds: number;
}

export interface Iperf3ClientOptions {
  readonly netns: string;
  readonly server: string;
  readonly port?: number;
  readonly seconds: number;
  /** Seconds at the start left out of the figures (TCP slow start); default 1. */
  readonly omitSeconds?: number;
  /** -R: the server sends, the client receives. */
  readonly reverse?: boolean;
  /** -M: TCP maximum segment size. */
  readonly mss?: number;
}

/**
 * Starts `iperf3 -s` in the netns, tracked by `procs`, and waits until it listens. `once`: the server
 * serves one test and exits (-1) — a fresh server per test, because a long-lived iperf3 3.12 server
 * can be left refusing connections after a test that went wrong.
 */
export async function startIperf3Server(
  procs: BenchProcesses,
  netns: string,
  port = 5201,
  once = false,
): Promise<number> {
  const pid = procs.spawn(['iperf3', '-s', '-p', String(port), ...(once ? ['-1'] : [])], {
    netns,
    label: `iperf3-server-${netns}`,
  });
  await procs.waitFor(
    async () => (await procs.runner.run(['ss', '-Htln', `sport = :${port}`], { netns })).stdout.trim() !== '',
    5_000,
    `iperf3 server in ${netns} did not listen on :${port}; is iperf3 installed (apt install iperf3)?`,
  );
  return pid;
}

export async function runIperf3(runner: CommandRunner, o: Iperf3ClientOptions): Promise<Iperf3Result> {
  const argv = [
    'iperf3',
    '-c',
    o.server,
    '-p',
    String(o.port ?? 5201),
    '-t',
    String(o.seconds),
    '-O',
    String(o.omitSeconds ?? 1),
    '-J',
    ...(o.reverse === true ? ['-R'] : []),
    ...(o.mss === undefined ? [] : ['-M', String(o.mss)]),
  ];
  const r = await runner.run(argv, {
    netns: o.netns,
    timeoutMs: (o.seconds + (o.omitSeconds ?? 1) + 15) * 1_000,
  });
  const parsed = parseIperf3Json(r.stdout);
  if (r.code !== 0 || parsed.error !== undefined) {
    throw new Error(
      `iperf3 to ${o.server} from ${o.netns} failed (exit ${r.code}): ${parsed.error ?? r.stderr.trim()}; check that the tunnel passes traffic (ping ${o.server} in ${o.netns})`,
    );
  }
  return parsed.result;
}

/** The figures of an `iperf3 -J` report, or its "error" field. */
export function parseIperf3Json(text: string): { result: Iperf3Result; error?: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { result: empty, error: `not JSON: ${text.slice(0, 200)}` };
  }
  const error = field(doc, ['error']);
  const received = field(doc, ['end', 'sum_received']);
  const sent = field(doc, ['end', 'sum_sent']);
  const bps = field(received, ['bits_per_second']);
  const result: Iperf3Result = {
    bitsPerSecond: typeof bps === 'number' ? bps : 0,
    retransmits: numberOr(field(sent, ['retransmits']), 0),
    seconds: numberOr(field(received, ['seconds']), 0),
  };
  if (typeof error === 'string') return { result, error };
  if (typeof bps !== 'number') return { result, error: 'no end.sum_received.bits_per_second in the report' };
  return { result };
}

const empty: Iperf3Result = { bitsPerSecond: 0, retransmits: 0, seconds: 0 };

function field(v: unknown, path: readonly string[]): unknown {
  let cur: unknown = v;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function numberOr(v: unknown, d: number): number {
  return typeof v === 'number' ? v : d;
}
