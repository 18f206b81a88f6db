// Data-plane benchmark (issue 4 "Measure"): between the same two test-bed namespaces, in one run and
// interleaved, the plain veth (the limit), a hand-configured WireGuard tunnel, a tunnel programmed
// through our WireGuard port, and Nebula: iperf3 TCP both ways, ping RTT (avg, p99), CPU and RSS of
// the tunnel processes during iperf3. Prints a table, the ratios against the targets, and as its
// last line one summary line.
//   node --import tsx bench/dataplane.ts [--quick] [--reps N] [--seconds S] [--pings N]
//     [--backend auto|kernel|userspace] [--no-nebula] [--no-tuned] [--ours forwarder|port]
// Needs root, iperf3, ping, wg, wireguard-go (or kernel WireGuard) and nebula (apt-get install nebula).
// Everything lives in the netns `nsmdp-*`; nothing touches the root namespace, and every exit path
// (end, error, SIGINT/SIGTERM) removes the namespaces and kills the processes it started, by pid.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../src/host/command-runner.js';
import { chooseBackend, probeBackends } from '../src/host/wireguard/index.js';
import { testbedDown, testbedUp } from '../test/helpers/testbed.js';
import { runWithCleanup } from './lib/cleanup.js';
import { formatTable, measureRows } from './lib/measure.js';
import type { RowSummary } from './lib/measure.js';
import { NetnsRunner } from './lib/netns-runner.js';
import { BenchProcesses } from './lib/processes.js';
import { fmt, ratio } from './lib/stats.js';
import { agentWireGuard, forwarderWireGuard, handWireGuard, nebula, vethPath } from './lib/tunnels.js';
import type { BenchTunnel, TunnelContext, WgKnobs } from './lib/tunnels.js';

const prefix = 'nsmdp';

/**
 * What closes the gap to Nebula for wireguard-go here (bench/dataplane-knobs.ts, results in
 * bench/results/): UDP socket buffers of 4 MiB instead of the 208 KiB default, which takes the
 * receive-side drops (/proc/net/snmp RcvbufErrors) from ~90,000 per run to 0. Debian's wireguard-go
 * 0.0.20220316 cannot be told to use them (newer wireguard-go asks for 7 MiB itself, with
 * SO_RCVBUFFORCE), and net.core.rmem_default is global, so the row forces them onto the running
 * process's sockets with a benchmark-only probe (bench/lib/force-socket-buffers.py): it shows what
 * the agent gains once its wireguard-go gets big buffers. MTU, txqueuelen, GOMAXPROCS, GOGC and CPU
 * pinning did not help reliably (see the report). The "tuned" row is on unless --no-tuned.
 */
export const recommendedUserspaceKnobs: WgKnobs = { udpBuffer: 4 * 1024 * 1024 };

interface Args {
  readonly reps: number;
  readonly seconds: number;
  readonly pings: number;
  readonly backend: 'auto' | 'kernel' | 'userspace';
  readonly nebula: boolean;
  readonly tuned: boolean;
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
    pings: num('--pings', quick ? 100 : 200),
    backend: b,
    nebula: !argv.includes('--no-nebula'),
    tuned: !argv.includes('--no-tuned'),
    ours: argv.includes('--ours') && argv[argv.indexOf('--ours') + 1] === 'port' ? 'port' : 'forwarder',
  };
}

async function main(args: Args, state: { procs?: BenchProcesses; workDir?: string }): Promise<void> {
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
  const ours = args.ours === 'forwarder' ? forwarderWireGuard : agentWireGuard;
  const oursLabel =
    args.ours === 'forwarder'
      ? `forwarder apply() → ${backend === 'kernel' ? 'KernelWireGuard' : 'UserspaceWireGuard'}`
      : `our WireGuard port (${backend === 'kernel' ? 'KernelWireGuard' : 'UserspaceWireGuard'})`;
  rows.push(
    await ours(ctx, {
      backend,
      id: 'wg-ours',
      label: oursLabel,
      suffix: 'wgo',
      subnet: '10.202.0',
      port: 51802,
    }),
  );
  if (args.tuned && backend === 'userspace') {
    try {
      rows.push(
        await ours(ctx, {
          ...recommendedUserspaceKnobs,
          backend,
          id: 'wg-ours-tuned',
          label: `${oursLabel} + 4 MiB UDP buffers (forced by the bench probe)`,
          suffix: 'wgt',
          subnet: '10.203.0',
          port: 51803,
        }),
      );
    } catch (e: unknown) {
      // The probe needs python3 and pidfd_getfd (Linux ≥ 5.6); without them the other rows still count.
      process.stderr.write(
        `skipping the tuned row: ${e instanceof Error ? e.message : String(e)}; install python3 or pass --no-tuned\n`,
      );
    }
  }
  if (args.nebula) {
    rows.push(
      await nebula(ctx, { id: 'nebula', label: 'Nebula', suffix: 'neb', subnet: '10.209.0', port: 4242 }),
    );
  }

  process.stderr.write(
    `measuring ${rows.length} rows × ${args.reps} reps × (${args.seconds}+1 s iperf3 each way + ${args.pings} pings)…\n`,
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
  const neb = by('nebula');
  const tuned = by('wg-ours-tuned');
  const thr = (r: RowSummary | undefined): number => (r === undefined ? NaN : (r.fwdMbps + r.revMbps) / 2);
  console.log(`nsm-agent data-plane benchmark — ${new Date().toISOString()}`);
  console.log(
    `machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; backend measured: ${backendText}`,
  );
  console.log(
    `method: 2 netns on a bridge; per rep every row once, order rotated; iperf3 TCP ${args.seconds} s (+1 s omitted) each way, ${args.pings} pings at 10 ms; medians of ${args.reps} reps`,
  );
  console.log('rows:');
  for (const t of tunnels) console.log(`  ${t.id.padEnd(14)} ${t.label} — ${t.settings}`);
  console.log('');
  console.log(formatTable(rows));
  console.log('');
  const lines: string[] = [];
  const thrRatio = ratio(thr(ours), thr(hand));
  const rttRatio = ratio(ours?.rttAvgMs ?? NaN, hand?.rttAvgMs ?? NaN);
  lines.push(
    `throughput ours/hand: fwd ${fmt(ratio(ours?.fwdMbps ?? NaN, hand?.fwdMbps ?? NaN), 3)}, rev ${fmt(ratio(ours?.revMbps ?? NaN, hand?.revMbps ?? NaN), 3)}, mean ${fmt(thrRatio, 3)} (target ≥ 0.97: ${thrRatio >= 0.97 ? 'met' : 'NOT met'})`,
  );
  lines.push(
    `RTT ours/hand: avg ${fmt(rttRatio, 3)}, p99 ${fmt(ratio(ours?.rttP99Ms ?? NaN, hand?.rttP99Ms ?? NaN), 3)} (target avg ≤ 1.05: ${rttRatio <= 1.05 ? 'met' : 'NOT met'})`,
  );
  if (neb !== undefined) {
    lines.push(
      `ours/Nebula throughput: ${fmt(ratio(thr(ours), thr(neb)), 3)} (goal ≥ 1.0); hand wireguard/Nebula ${fmt(ratio(thr(hand), thr(neb)), 3)}; RSS/proc ours ${fmt(ours?.rssMb ?? NaN)} MiB vs Nebula ${fmt(neb.rssMb)} MiB`,
    );
    if (tuned !== undefined) {
      lines.push(
        `tuned ours/Nebula throughput: ${fmt(ratio(thr(tuned), thr(neb)), 3)}; tuned/hand ${fmt(ratio(thr(tuned), thr(hand)), 3)}`,
      );
    }
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
      `ours=${fmt(thr(ours), 0)}Mbps`,
      ...(tuned === undefined ? [] : [`ours-tuned=${fmt(thr(tuned), 0)}Mbps`]),
      ...(neb === undefined ? [] : [`nebula=${fmt(thr(neb), 0)}Mbps`]),
      `thr-ratio=${fmt(thrRatio, 3)}`,
      `rtt-ratio=${fmt(rttRatio, 3)}`,
      ...(neb === undefined ? [] : [`ours/nebula=${fmt(ratio(thr(ours), thr(neb)), 3)}`]),
      ...(neb === undefined || tuned === undefined
        ? []
        : [`tuned/nebula=${fmt(ratio(thr(tuned), thr(neb)), 3)}`]),
      `rtt-ours=${fmt(ours?.rttAvgMs ?? NaN, 3)}ms`,
      `rtt-hand=${fmt(hand?.rttAvgMs ?? NaN, 3)}ms`,
    ].join(' '),
  );
}

const state: { procs?: BenchProcesses; workDir?: string } = {};
const code = await runWithCleanup(
  () => main(parseArgs(process.argv.slice(2)), state),
  async () => {
    await state.procs?.stopAll();
    await testbedDown(prefix).catch((e: unknown) => {
      process.stderr.write(`cleanup: ${String(e)}; run 'npm run testbed -- down ${prefix}'\n`);
    });
    if (state.workDir !== undefined) await rm(state.workDir, { recursive: true, force: true });
  },
);
process.exitCode = code;
