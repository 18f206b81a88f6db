// Measures several paths side by side: each repetition runs every row once (iperf3 both ways, then
// ping), in an order that rotates from one repetition to the next so no row always follows the
// same neighbour; figures are medians over the repetitions.
import type { CommandRunner } from '../../src/host/command-runner.js';
import { runIperf3, startIperf3Server } from './iperf3.js';
import { diffCounters, readLinkCounters, readUdpCounters, readUdpSocketBuffers } from './netns-counters.js';
import type { UdpCounters } from './netns-counters.js';
import { runPing } from './ping.js';
import type { BenchProcesses } from './processes.js';
import { measureProcs } from './proc-stats.js';
import { fmt, median, percentile } from './stats.js';
import type { BenchTunnel } from './tunnels.js';

export interface MeasureOptions {
  readonly runner: CommandRunner;
  /** Starts and stops the one-test iperf3 server of each measurement. */
  readonly procs: BenchProcesses;
  /** Client netns (host 2); the server is host 1. */
  readonly clientNetns: string;
  readonly serverNetns: string;
  readonly reps: number;
  readonly seconds: number;
  /** Pings per repetition right after iperf3 (0: none), every pingIntervalS. */
  readonly pings: number;
  readonly pingIntervalS: number;
  /**
   * A latency phase after all throughput repetitions, on idle tunnels: this many rounds, each
   * pinging every row once (rttPings pings, order rotated), so rows are compared round by round
   * under the same background load (paired ratios). 0: none.
   */
  readonly rttRounds?: number;
  readonly rttPings?: number;
  /** Called after each measurement, for progress on stderr. */
  readonly progress?: (line: string) => void;
}

export interface RowSamples {
  readonly tunnel: BenchTunnel;
  /** Mbit/s, client → server (host 2 → host 1). */
  readonly fwdMbps: number[];
  /** Mbit/s, server → client (-R). */
  readonly revMbps: number[];
  readonly retransmits: number[];
  readonly rttAvgMs: number[];
  readonly rttP50Ms: number[];
  readonly rttP99Ms: number[];
  /** Every RTT of the latency phase (for the pooled p99). */
  readonly rttAll: number[];
  readonly pingLost: number[];
  /** Tunnel processes' CPU during iperf3, percent of one CPU, both hosts together. */
  readonly cpuPercent: number[];
  /** Peak VmRSS per tunnel process during iperf3, KiB (max over both hosts). */
  readonly rssKb: number[];
  /** Context switches of the tunnel processes per Mbit moved (both hosts). */
  readonly ctxPerMbit: number[];
  /** UDP receive-buffer drops in both netns during the iperf3 runs. */
  readonly udpRcvbufErrors: number[];
  /** RX drops on the tunnel devices during the iperf3 runs. */
  readonly linkRxDropped: number[];
}

export interface RowSummary {
  readonly id: string;
  readonly label: string;
  readonly settings: string;
  readonly fwdMbps: number;
  readonly revMbps: number;
  readonly retransmits: number;
  /** Median over rounds (or reps) of each one's mean RTT. */
  readonly rttAvgMs: number;
  /** Median over rounds (or reps) of each one's median RTT. */
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  /** Per round (or rep), in order: for paired ratios between rows. */
  readonly rttRoundsAvgMs: readonly number[];
  readonly rttRoundsP50Ms: readonly number[];
  readonly pingLost: number;
  readonly cpuPercent: number;
  readonly rssMb: number;
  readonly udpRcvbufErrors: number;
  readonly linkRxDropped: number;
  /** CPU per Gbit/s moved (both directions averaged): the efficiency of the path. */
  readonly cpuPerGbps: number;
  /** Context switches of the tunnel processes per Mbit moved. */
  readonly ctxPerMbit: number;
  /** SO_RCVBUF of the tunnel's UDP socket on host 1 after the runs, KiB. */
  readonly udpRcvbufKb: number;
}

export async function measureRows(rows: readonly BenchTunnel[], o: MeasureOptions): Promise<RowSummary[]> {
  const samples: RowSamples[] = rows.map((tunnel) => ({
    tunnel,
    fwdMbps: [],
    revMbps: [],
    retransmits: [],
    rttAvgMs: [],
    rttP50Ms: [],
    rttP99Ms: [],
    rttAll: [],
    pingLost: [],
    cpuPercent: [],
    rssKb: [],
    ctxPerMbit: [],
    udpRcvbufErrors: [],
    linkRxDropped: [],
  }));
  for (let rep = 0; rep < o.reps; rep++) {
    for (let k = 0; k < samples.length; k++) {
      const s = samples[(k + rep) % samples.length]!;
      await measureOnce(s, o);
      o.progress?.(
        `rep ${rep + 1}/${o.reps} ${s.tunnel.id}: ${fmt(s.fwdMbps.at(-1) ?? NaN, 0)}/${fmt(s.revMbps.at(-1) ?? NaN, 0)} Mbit/s, rtt ${fmt(s.rttAvgMs.at(-1) ?? NaN, 3)} ms`,
      );
    }
  }
  const rounds = o.rttRounds ?? 0;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < samples.length; k++) {
      const s = samples[(k + round) % samples.length]!;
      await pingRow(s, o, o.rttPings ?? 100);
    }
    o.progress?.(
      `rtt round ${round + 1}/${rounds}: ${samples.map((s) => `${s.tunnel.id} ${fmt(s.rttP50Ms.at(-1) ?? NaN, 3)}`).join(', ')} ms (p50)`,
    );
  }
  const out: RowSummary[] = [];
  for (const s of samples) {
    const port = s.tunnel.udpPort;
    const buf = port === undefined ? undefined : await readUdpSocketBuffers(o.runner, o.serverNetns, port);
    out.push({ ...summarize(s), udpRcvbufKb: buf === undefined ? Number.NaN : buf.rcvbuf / 1024 });
  }
  return out;
}

async function udpErrors(o: MeasureOptions): Promise<UdpCounters[]> {
  return Promise.all([o.serverNetns, o.clientNetns].map((n) => readUdpCounters(o.runner, n)));
}

async function linkDrops(o: MeasureOptions, t: BenchTunnel): Promise<number> {
  let n = 0;
  for (const d of t.devices) n += (await readLinkCounters(o.runner, d.netns, d.dev)).rxDropped;
  return n;
}

async function measureOnce(s: RowSamples, o: MeasureOptions): Promise<void> {
  const t = s.tunnel;
  const udp0 = await udpErrors(o);
  const drops0 = await linkDrops(o, t);
  let cpu = 0;
  let rss = 0;
  let retrans = 0;
  let ctx = 0;
  for (const reverse of [false, true]) {
    const server = await startIperf3Server(o.procs, o.serverNetns, 5201, true);
    const { result, window } = await measureProcs(t.pids, () =>
      runIperf3(o.runner, { netns: o.clientNetns, server: t.serverIp, seconds: o.seconds, reverse }),
    ).finally(() => o.procs.stop(server));
    (reverse ? s.revMbps : s.fwdMbps).push(result.bitsPerSecond / 1e6);
    retrans += result.retransmits;
    ctx += window.ctxSwitchesPerSecond / (result.bitsPerSecond / 1e6) / 2;
    cpu += window.cpuPercent / 2;
    rss = Math.max(rss, ...window.rssKbEach, 0);
  }
  const udp1 = await udpErrors(o);
  s.udpRcvbufErrors.push(udp1.reduce((sum, u, i) => sum + diffCounters(udp0[i]!, u).rcvbufErrors, 0));
  s.linkRxDropped.push((await linkDrops(o, t)) - drops0);
  s.retransmits.push(retrans);
  s.cpuPercent.push(cpu);
  s.rssKb.push(rss);
  s.ctxPerMbit.push(ctx);
  if (o.pings > 0 && (o.rttRounds ?? 0) === 0) await pingRow(s, o, o.pings);
}

async function pingRow(s: RowSamples, o: MeasureOptions, count: number): Promise<void> {
  const p = await runPing(o.runner, {
    netns: o.clientNetns,
    target: s.tunnel.serverIp,
    count,
    intervalS: o.pingIntervalS,
  });
  s.rttAvgMs.push(p.avgMs);
  s.rttP50Ms.push(p.p50Ms);
  s.rttP99Ms.push(p.p99Ms);
  s.rttAll.push(...p.rttsMs);
  s.pingLost.push(p.sent - p.received);
}

function summarize(s: RowSamples): Omit<RowSummary, 'udpRcvbufKb'> {
  const fwd = median(s.fwdMbps);
  const rev = median(s.revMbps);
  const cpu = median(s.cpuPercent);
  return {
    id: s.tunnel.id,
    label: s.tunnel.label,
    settings: s.tunnel.settings,
    fwdMbps: fwd,
    revMbps: rev,
    retransmits: median(s.retransmits),
    rttAvgMs: median(s.rttAvgMs),
    rttP50Ms: median(s.rttP50Ms),
    rttP99Ms: percentile(s.rttAll, 99),
    rttRoundsAvgMs: s.rttAvgMs,
    rttRoundsP50Ms: s.rttP50Ms,
    pingLost: s.pingLost.reduce((a, b) => a + b, 0),
    cpuPercent: cpu,
    rssMb: median(s.rssKb) / 1024,
    udpRcvbufErrors: median(s.udpRcvbufErrors),
    linkRxDropped: median(s.linkRxDropped),
    cpuPerGbps: s.tunnel.pids.length === 0 ? Number.NaN : cpu / ((fwd + rev) / 2 / 1000),
    ctxPerMbit: s.tunnel.pids.length === 0 ? Number.NaN : median(s.ctxPerMbit),
  };
}

/** A fixed-width table of the summaries (medians over the repetitions). */
export function formatTable(rows: readonly RowSummary[]): string {
  const head = [
    'row',
    'fwd Mbit/s',
    'rev Mbit/s',
    'retr',
    'rtt avg ms',
    'rtt p50 ms',
    'rtt p99 ms',
    'lost',
    'tunnel CPU %',
    'CPU%/Gbit/s',
    'ctxsw/Mbit',
    'RSS MiB/proc',
    'udp rcvbuf err',
    'SO_RCVBUF KiB',
    'dev rx drop',
  ];
  const body = rows.map((r) => [
    r.id,
    fmt(r.fwdMbps, 0),
    fmt(r.revMbps, 0),
    fmt(r.retransmits, 0),
    fmt(r.rttAvgMs, 3),
    fmt(r.rttP50Ms, 3),
    fmt(r.rttP99Ms, 3),
    String(r.pingLost),
    fmt(r.cpuPercent, 0),
    fmt(r.cpuPerGbps, 0),
    fmt(r.ctxPerMbit, 1),
    fmt(r.rssMb, 1),
    fmt(r.udpRcvbufErrors, 0),
    fmt(r.udpRcvbufKb, 0),
    fmt(r.linkRxDropped, 0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}
