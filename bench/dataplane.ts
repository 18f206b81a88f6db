// Data-plane benchmark (issue 4 "Measure"): between the same two test-bed namespaces, in one run and
// interleaved, the plain veth (the limit), a hand-configured WireGuard tunnel, a tunnel programmed
// through our WireGuard port, and Nebula: iperf3 TCP both ways, ping RTT (avg, p99), CPU and RSS of
// the tunnel processes during iperf3. Prints a table, the ratios against the targets, and as its
// last line one summary line.
//   node --import tsx bench/dataplane.ts [--quick] [--reps N] [--seconds S] [--rtt-rounds N]
//     [--pings N] [--backend auto|kernel|userspace] [--no-nebula] [--no-hand-buf] [--no-hand-setsid]
//     [--no-ours-untuned]
//     [--ours forwarder|port]
// Throughput: per rep every row once (order rotated), medians of reps. Latency: a separate phase on
// idle tunnels, N rounds of --pings pings per row (order rotated); RTT ratios are round-by-round
// (paired) ratios, median and quartiles over the rounds, for the mean and for the median RTT.
// Needs root, iperf3, ping, wg, wireguard-go (or kernel WireGuard) and nebula (apt-get install nebula).
// Everything lives in the netns `nsmdp-*`; nothing touches the root namespace, and every exit path
// (end, error, SIGINT/SIGTERM) removes the namespaces and kills the processes it started, by pid.
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../src/host/command-runner.js';
import { defaultUdpBufferBytes } from '../src/host/socket-buffers/index.js';
import { chooseBackend, probeBackends } from '../src/host/wireguard/index.js';
import { testbedUp } from '../test/helpers/testbed.js';
import { runOnTestbed } from './lib/cleanup.js';
import type { TestbedBenchState } from './lib/cleanup.js';
import { formatTable, measureRows } from './lib/measure.js';
import type { RowSummary } from './lib/measure.js';
import { NetnsRunner } from './lib/netns-runner.js';
import { BenchProcesses } from './lib/processes.js';
import { fmt, pairedRatio, ratio } from './lib/stats.js';
import { agentWireGuard, forwarderWireGuard, handWireGuard, nebula, vethPath } from './lib/tunnels.js';
import type { BenchTunnel, TunnelContext, WgKnobs } from './lib/tunnels.js';

const prefix = 'nsmdp';

/**
 * What closed the gap to Nebula for wireguard-go here (bench/dataplane-knobs.ts, results in
 * bench/results/), both done by the agent itself (UserspaceWireGuard):
 *  - UDP socket buffers of 4 MiB instead of the 208 KiB default (src/host/socket-buffers), which
 *    takes the receive-side drops (/proc/net/snmp RcvbufErrors) from ~90,000 per run to 0; Debian's
 *    wireguard-go 0.0.20220316 does not ask for them (newer wireguard-go asks for 7 MiB itself);
 *  - SCHED_BATCH on wireguard-go's threads: the agent starts it in a session of its own (it must
 *    outlive the agent), which with kernel.sched_autogroup_enabled=1 is a scheduling group of its
 *    own, and every packet then woke it with a preemption (~80 context switches per Mbit).
 * Rows for a fair comparison: wg-hand-buf forces the same buffers onto a hand-configured
 * wireguard-go with a benchmark-only probe (bench/lib/force-socket-buffers.py); the -setsid rows
 * start hand-made wireguard-go in its own session as the agent does (wg-hand and Nebula share the
 * benchmark's session, and so its scheduling group, with iperf3 and ping); wg-ours-untuned is the
 * agent with both off.
 */
export const handBufferKnobs: WgKnobs = { udpBuffer: defaultUdpBufferBytes };

interface Args {
  readonly reps: number;
  readonly seconds: number;
  readonly pings: number;
  readonly rttRounds: number;
  readonly backend: 'auto' | 'kernel' | 'userspace';
  readonly nebula: boolean;
  readonly handBuf: boolean;
  readonly handSetsid: boolean;
  readonly oursUntuned: boolean;
  /** What makes the "ours" row: the forwarder's apply() (default) or the WireGuard port directly. */
  readonly ours: 'forwarder' | 'port';
}

function parseArgs(argv: readonly string[]): Args {
  const quick = argv.includes('--quick');
  const num = (flag: string, d: number): number => {
    const i = argv.indexOf(flag);
    if (i < 0) return d;
    const v = Number(argv[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} needs a positive number`);
    return v;
  };
  const b = argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : 'auto';
  if (b !== 'auto' && b !== 'kernel' && b !== 'userspace') {
    throw new Error('--backend is auto, kernel or userspace');
  }
  return {
    reps: num('--reps', quick ? 2 : 4),
    seconds: num('--seconds', quick ? 2 : 4),
    pings: num('--pings', 100),
    rttRounds: num('--rtt-rounds', quick ? 4 : 12),
    backend: b,
    nebula: !argv.includes('--no-nebula'),
    handBuf: !argv.includes('--no-hand-buf'),
    handSetsid: !argv.includes('--no-hand-setsid'),
    oursUntuned: !argv.includes('--no-ours-untuned'),
    ours: argv.includes('--ours') && argv[argv.indexOf('--ours') + 1] === 'port' ? 'port' : 'forwarder',
  };
}

async function main(args: Args, state: TestbedBenchState): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark creates network namespaces');
  const runner = new ProcessRunner();
  const workDir = await mkdtemp(join(tmpdir(), 'nsm-dataplane-'));
  state.workDir = workDir;
  const procs = new BenchProcesses(runner, workDir);
  state.procs = procs;
  const t0 = Date.now();
  const bed = await testbedUp({ prefix, hosts: 2, runner });
  const [a, b] = bed.hosts as [(typeof bed.hosts)[0], (typeof bed.hosts)[0]];
  // The backend probe makes a throwaway link: inside host 1, never in the root namespace.
  const probe = await probeBackends({ runner: new NetnsRunner(runner, a.netns) });
  const backend = chooseBackend(probe, args.backend);
  const backendText =
    backend === 'kernel'
      ? 'kernel WireGuard'
      : `wireguard-go ${probe.wireguardGoVersion ?? '?'} (kernel WireGuard: ${probe.kernel ? 'available' : 'not available'})`;
  const ctx: TunnelContext = { runner, procs, a, b, workDir };

  const rows: BenchTunnel[] = [vethPath(ctx)];
  rows.push(
    await handWireGuard(ctx, {
      backend,
      id: 'wg-hand',
      label: `hand-configured ${backend === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'}`,
      suffix: 'wgh',
      subnet: '10.201.0',
      port: 51801,
    }),
  );
  const userspace = backend === 'userspace';
  if (args.handSetsid && userspace) {
    // The agent starts wireguard-go in a session of its own (it must outlive the agent); with
    // kernel.sched_autogroup_enabled=1 that is also a scheduling group of its own, while wg-hand
    // shares the benchmark's session (and autogroup) with ping and iperf3. This row is hand-made
    // wireguard-go in its own session: the like-for-like reference for the agent's rows.
    rows.push(
      await handWireGuard(ctx, {
        backend,
        detached: true,
        id: 'wg-hand-setsid',
        label: 'hand-configured wireguard-go in its own session (setsid, as the agent starts it)',
        suffix: 'wgs',
        subnet: '10.205.0',
        port: 51805,
      }),
    );
  }
  if (args.handBuf && userspace) {
    try {
      rows.push(
        await handWireGuard(ctx, {
          ...handBufferKnobs,
          backend,
          id: 'wg-hand-buf',
          label: `hand-configured wireguard-go + ${defaultUdpBufferBytes / 1024 / 1024} MiB UDP buffers (forced by the bench probe)`,
          suffix: 'wgb',
          subnet: '10.203.0',
          port: 51803,
        }),
      );
    } catch (e: unknown) {
      // The probe needs python3 and pidfd_getfd (Linux ≥ 5.6); without them the other rows still count.
      process.stderr.write(
        `skipping wg-hand-buf: ${e instanceof Error ? e.message : String(e)}; install python3 or pass --no-hand-buf\n`,
      );
    }
  }
  if (args.handBuf && args.handSetsid && userspace) {
    try {
      rows.push(
        await handWireGuard(ctx, {
          ...handBufferKnobs,
          backend,
          detached: true,
          id: 'wg-hand-buf-setsid',
          label: `hand-configured wireguard-go in its own session + ${defaultUdpBufferBytes / 1024 / 1024} MiB UDP buffers (bench probe)`,
          suffix: 'wgx',
          subnet: '10.206.0',
          port: 51806,
        }),
      );
    } catch (e: unknown) {
      process.stderr.write(
        `skipping wg-hand-buf-setsid: ${e instanceof Error ? e.message : String(e)}; install python3 or pass --no-hand-buf\n`,
      );
    }
  }
  const ours = args.ours === 'forwarder' ? forwarderWireGuard : agentWireGuard;
  const oursLabel =
    args.ours === 'forwarder'
      ? `forwarder apply() → ${backend === 'kernel' ? 'KernelWireGuard' : 'UserspaceWireGuard'}`
      : `our WireGuard port (${backend === 'kernel' ? 'KernelWireGuard' : 'UserspaceWireGuard'})`;
  rows.push(
    await ours(ctx, {
      backend,
      id: 'wg-ours',
      label: userspace ? `${oursLabel}, the agent's own tuning (UDP buffers, SCHED_BATCH)` : oursLabel,
      suffix: 'wgo',
      subnet: '10.202.0',
      port: 51802,
    }),
  );
  if (args.oursUntuned && userspace) {
    rows.push(
      await ours(ctx, {
        backend,
        agentUdpBuffer: 0,
        agentSchedBatch: false,
        id: 'wg-ours-untuned',
        label: `${oursLabel}, buffer sizing and SCHED_BATCH off`,
        suffix: 'wgn',
        subnet: '10.204.0',
        port: 51804,
      }),
    );
  }
  if (args.nebula) {
    rows.push(
      await nebula(ctx, { id: 'nebula', label: 'Nebula', suffix: 'neb', subnet: '10.209.0', port: 4242 }),
    );
    if (args.handSetsid) {
      rows.push(
        await nebula(ctx, {
          id: 'nebula-setsid',
          label: 'Nebula in its own session (setsid)',
          suffix: 'nes',
          subnet: '10.208.0',
          port: 4243,
          detached: true,
        }),
      );
    }
  }

  process.stderr.write(
    `measuring ${rows.length} rows × ${args.reps} reps × (${args.seconds}+1 s iperf3 each way), then ${args.rttRounds} rounds × ${args.pings} pings…\n`,
  );
  const summary = await measureRows(rows, {
    runner,
    procs,
    clientNetns: b.netns,
    serverNetns: a.netns,
    reps: args.reps,
    seconds: args.seconds,
    pings: args.pings,
    pingIntervalS: 0.01,
    rttRounds: args.rttRounds,
    rttPings: args.pings,
    progress: (l) => process.stderr.write(`  ${l}\n`),
  });
  report(summary, rows, args, backendText, (Date.now() - t0) / 1000);
}

function report(
  rows: readonly RowSummary[],
  tunnels: readonly BenchTunnel[],
  args: Args,
  backendText: string,
  elapsedS: number,
): void {
  const by = (id: string): RowSummary | undefined => rows.find((r) => r.id === id);
  const ours = by('wg-ours');
  const hand = by('wg-hand');
  const handBuf = by('wg-hand-buf');
  const oursUntuned = by('wg-ours-untuned');
  const handSetsid = by('wg-hand-setsid');
  const handBufSetsid = by('wg-hand-buf-setsid');
  const neb = by('nebula');
  const nebSetsid = by('nebula-setsid');
  const thr = (r: RowSummary | undefined): number => (r === undefined ? NaN : (r.fwdMbps + r.revMbps) / 2);
  console.log(`nsm-agent data-plane benchmark — ${new Date().toISOString()}`);
  console.log(
    `machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; backend measured: ${backendText}`,
  );
  console.log(
    `method: 2 netns on a bridge; throughput: per rep every row once, order rotated, iperf3 TCP ${args.seconds} s (+1 s omitted) each way, medians of ${args.reps} reps; ` +
      `latency: idle tunnels, ${args.rttRounds} rounds × ${args.pings} pings at 10 ms per row, order rotated; rtt avg/p50 = median over rounds of each round's mean/median, p99 pooled`,
  );
  console.log('rows:');
  for (const t of tunnels) console.log(`  ${t.id.padEnd(14)} ${t.label} — ${t.settings}`);
  console.log('');
  console.log(formatTable(rows));
  console.log('');
  const lines: string[] = [];
  const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const thrLine = (name: string, x: RowSummary | undefined, y: RowSummary | undefined): number => {
    const r = ratio(thr(x), thr(y));
    if (x !== undefined && y !== undefined) {
      lines.push(
        `throughput ${name}: fwd ${fmt(ratio(x.fwdMbps, y.fwdMbps), 3)}, rev ${fmt(ratio(x.revMbps, y.revMbps), 3)}, mean ${fmt(r, 3)} (target ≥ 0.97: ${met(r >= 0.97)})`,
      );
    }
    return r;
  };
  const rttLine = (name: string, x: RowSummary | undefined, y: RowSummary | undefined): number => {
    if (x === undefined || y === undefined) return NaN;
    const avg = pairedRatio(x.rttRoundsAvgMs, y.rttRoundsAvgMs);
    const p50 = pairedRatio(x.rttRoundsP50Ms, y.rttRoundsP50Ms);
    lines.push(
      `RTT ${name} (paired over ${avg.n} rounds): mean-RTT ratio ${fmt(avg.median, 3)} [p25–p75 ${fmt(avg.p25, 3)}–${fmt(avg.p75, 3)}], ` +
        `median-RTT ratio ${fmt(p50.median, 3)} [${fmt(p50.p25, 3)}–${fmt(p50.p75, 3)}]; p99 ${fmt(ratio(x.rttP99Ms, y.rttP99Ms), 3)} (target mean-RTT ratio ≤ 1.05: ${met(avg.median <= 1.05)})`,
    );
    return avg.median;
  };
  const thrRatio = thrLine('ours/hand', ours, hand);
  const thrSame = thrLine('ours/hand-buf (same buffers)', ours, handBuf);
  const thrLike = thrLine('ours/hand-buf-setsid (same buffers, own session)', ours, handBufSetsid);
  thrLine('ours-untuned/hand', oursUntuned, hand);
  thrLine('ours-untuned/hand-setsid (no tuning, own session: like for like)', oursUntuned, handSetsid);
  const rttRatio = rttLine('ours/hand', ours, hand);
  const rttSame = rttLine('ours/hand-buf', ours, handBuf);
  const rttLike = rttLine('ours/hand-buf-setsid', ours, handBufSetsid);
  rttLine('ours-untuned/hand', oursUntuned, hand);
  rttLine('ours/hand-setsid', ours, handSetsid);
  rttLine('ours-untuned/hand-setsid (like for like)', oursUntuned, handSetsid);
  rttLine('hand-setsid/hand (the session alone)', handSetsid, hand);
  if (neb !== undefined) {
    lines.push(
      `ours/Nebula throughput: ${fmt(ratio(thr(ours), thr(neb)), 3)} (goal ≥ 1.0: ${met(ratio(thr(ours), thr(neb)) >= 1)}); hand/Nebula ${fmt(ratio(thr(hand), thr(neb)), 3)}; hand-buf/Nebula ${fmt(ratio(thr(handBuf), thr(neb)), 3)}; hand-buf-setsid/Nebula ${fmt(ratio(thr(handBufSetsid), thr(neb)), 3)}; RSS/proc ours ${fmt(ours?.rssMb ?? NaN)} MiB vs Nebula ${fmt(neb.rssMb)} MiB`,
    );
  }
  if (nebSetsid !== undefined) {
    lines.push(
      `ours/Nebula-setsid throughput (both in a session of their own): ${fmt(ratio(thr(ours), thr(nebSetsid)), 3)} (goal ≥ 1.0: ${met(ratio(thr(ours), thr(nebSetsid)) >= 1)}); hand-buf-setsid/Nebula-setsid ${fmt(ratio(thr(handBufSetsid), thr(nebSetsid)), 3)}`,
    );
  }
  lines.push(
    `veth limit: ${fmt(thr(by('veth')), 0)} Mbit/s mean of both directions; elapsed ${fmt(elapsedS, 0)} s`,
  );
  for (const l of lines) console.log(l);
  console.log(
    [
      `SUMMARY dataplane backend=${backendText.split(' (')[0]!.replace(' ', '-')}`,
      `veth=${fmt(thr(by('veth')), 0)}Mbps`,
      `hand=${fmt(thr(hand), 0)}Mbps`,
      ...(handBuf === undefined ? [] : [`hand-buf=${fmt(thr(handBuf), 0)}Mbps`]),
      ...(handSetsid === undefined ? [] : [`hand-setsid=${fmt(thr(handSetsid), 0)}Mbps`]),
      ...(handBufSetsid === undefined ? [] : [`hand-buf-setsid=${fmt(thr(handBufSetsid), 0)}Mbps`]),
      `ours=${fmt(thr(ours), 0)}Mbps`,
      ...(oursUntuned === undefined ? [] : [`ours-untuned=${fmt(thr(oursUntuned), 0)}Mbps`]),
      ...(neb === undefined ? [] : [`nebula=${fmt(thr(neb), 0)}Mbps`]),
      ...(nebSetsid === undefined ? [] : [`nebula-setsid=${fmt(thr(nebSetsid), 0)}Mbps`]),
      `thr-ratio=${fmt(thrRatio, 3)}`,
      ...(handBuf === undefined ? [] : [`thr-ratio-same-buffers=${fmt(thrSame, 3)}`]),
      ...(handBufSetsid === undefined ? [] : [`thr-ratio-same-buffers-setsid=${fmt(thrLike, 3)}`]),
      `rtt-ratio=${fmt(rttRatio, 3)}`,
      ...(handBuf === undefined ? [] : [`rtt-ratio-same-buffers=${fmt(rttSame, 3)}`]),
      ...(handBufSetsid === undefined ? [] : [`rtt-ratio-same-buffers-setsid=${fmt(rttLike, 3)}`]),
      ...(neb === undefined ? [] : [`ours/nebula=${fmt(ratio(thr(ours), thr(neb)), 3)}`]),
      ...(nebSetsid === undefined ? [] : [`ours/nebula-setsid=${fmt(ratio(thr(ours), thr(nebSetsid)), 3)}`]),
      `rtt-ours=${fmt(ours?.rttAvgMs ?? NaN, 3)}ms`,
      `rtt-hand=${fmt(hand?.rttAvgMs ?? NaN, 3)}ms`,
    ].join(' '),
  );
}

process.exitCode = await runOnTestbed(prefix, (state) => main(parseArgs(process.argv.slice(2)), state));
