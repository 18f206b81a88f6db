// Where does userspace WireGuard lose against Nebula? Each knob the agent could set is a row of its
// own — a wireguard-go pair programmed through our WireGuard port with that one setting changed —
// measured side by side with the default row and Nebula in one run, interleaved, medians of reps.
//   node --import tsx bench/dataplane-knobs.ts [--reps N] [--seconds S] [--only id,id,…] [--gro]
// --gro: also run every row with GRO enabled on the test bed's veths (a bed-wide setting, so it is
// a second phase rather than a row).
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../src/host/command-runner.js';
import { testbedUp } from '../test/helpers/testbed.js';
import type { Testbed } from '../test/helpers/testbed.js';
import { runOnTestbed } from './lib/cleanup.js';
import type { TestbedBenchState } from './lib/cleanup.js';
import { formatTable, measureRows } from './lib/measure.js';
import type { RowSummary } from './lib/measure.js';
import { BenchProcesses } from './lib/processes.js';
import { fmt, ratio } from './lib/stats.js';
import { agentWireGuard, forwarderWireGuard, handWireGuard, nebula } from './lib/tunnels.js';
import type { BenchTunnel, TunnelContext, WgKnobs } from './lib/tunnels.js';

const prefix = 'nsmdk';
const bigBuffer = 4 * 1024 * 1024;

interface Variant {
  readonly id: string;
  readonly what: string;
  readonly knobs?: WgKnobs;
  /** Made another way than the forwarder: by hand (wg/ip), optionally in its own session, or the port directly. */
  readonly maker?: 'hand' | 'hand-detached' | 'port' | 'forwarder';
  readonly nebula?: {
    readonly mtu?: number;
    readonly socketBuffer?: number;
    readonly cpus?: readonly [string, string];
  };
}

const variants: readonly Variant[] = [
  { id: 'base', what: 'our port, defaults (MTU 1420, Go defaults, txqueuelen 500, UDP buffers 208 KiB)' },
  {
    id: 'buf4m',
    what: "UDP socket buffers 4 MiB (SO_RCVBUFFORCE/SO_SNDBUFFORCE put on wireguard-go's sockets)",
    knobs: { udpBuffer: bigBuffer },
  },
  {
    id: 'agent-buf4m',
    what: "the agent's own UDP buffer sizing (UserspaceWireGuard, 4 MiB: its default)",
    knobs: { agentUdpBuffer: bigBuffer },
  },
  {
    id: 'agent-buf4m-batch',
    what: 'agent-buf4m + SCHED_BATCH on every wireguard-go thread (chrt -b)',
    knobs: { agentUdpBuffer: bigBuffer, schedBatch: true },
  },
  {
    id: 'hand-buf4m',
    what: "hand-configured wireguard-go in the benchmark's session + 4 MiB UDP buffers (bench probe)",
    maker: 'hand',
    knobs: { udpBuffer: bigBuffer },
  },
  {
    id: 'hand-setsid-buf4m',
    what: 'hand-configured wireguard-go in its own session + 4 MiB UDP buffers (bench probe)',
    maker: 'hand-detached',
    knobs: { udpBuffer: bigBuffer },
  },
  { id: 'buf1m', what: 'UDP socket buffers 1 MiB', knobs: { udpBuffer: 1024 * 1024 } },
  { id: 'buf2m', what: 'UDP socket buffers 2 MiB', knobs: { udpBuffer: 2 * 1024 * 1024 } },
  { id: 'buf8m', what: 'UDP socket buffers 8 MiB', knobs: { udpBuffer: 8 * 1024 * 1024 } },
  { id: 'gomaxprocs1', what: 'GOMAXPROCS=1', knobs: { env: { GOMAXPROCS: '1' } } },
  { id: 'gogc400', what: 'GOGC=400', knobs: { env: { GOGC: '400' } } },
  { id: 'mtu1380', what: 'MTU 1380', knobs: { mtu: 1380 } },
  { id: 'mtu1300', what: 'MTU 1300 (Nebula default)', knobs: { mtu: 1300 } },
  { id: 'txq5000', what: 'TUN txqueuelen 5000', knobs: { txqueuelen: 5000 } },
  { id: 'pin', what: 'wireguard-go of host 1 on CPU 0, host 2 on CPU 1', knobs: { cpus: ['0', '1'] } },
  {
    id: 'buf4m-gmp1',
    what: 'buf4m + GOMAXPROCS=1',
    knobs: {
      env: { GOMAXPROCS: '1' },
      udpBuffer: bigBuffer,
    },
  },
  {
    id: 'pin-same',
    what: 'both wireguard-go on CPU 0 (iperf3 free to use CPU 1)',
    knobs: { cpus: ['0', '0'] },
  },
  {
    id: 'pin-gmp1',
    what: 'pin + GOMAXPROCS=1',
    knobs: { cpus: ['0', '1'], env: { GOMAXPROCS: '1' } },
  },
  { id: 'pin-buf4m', what: 'pin + UDP buffers 4 MiB', knobs: { cpus: ['0', '1'], udpBuffer: bigBuffer } },
  {
    id: 'pin-same-buf4m',
    what: 'pin-same + UDP buffers 4 MiB',
    knobs: { cpus: ['0', '0'], udpBuffer: bigBuffer },
  },
  { id: 'hand', what: "hand-configured wireguard-go (wg, ip), in the benchmark's session", maker: 'hand' },
  {
    id: 'hand-setsid',
    what: 'hand-configured wireguard-go started in its own session (setsid), as the agent starts it',
    maker: 'hand-detached',
  },
  { id: 'forwarder', what: "the forwarder's apply() (UserspaceWireGuard)", maker: 'forwarder' },
  { id: 'nebula', what: 'Nebula defaults (MTU 1300, system socket buffers)', nebula: {} },
  { id: 'nebula-pin', what: 'Nebula, host 1 on CPU 0, host 2 on CPU 1', nebula: { cpus: ['0', '1'] } },
  {
    id: 'nebula-pin-4m',
    what: 'Nebula pinned, 4 MiB socket buffers',
    nebula: { cpus: ['0', '1'], socketBuffer: bigBuffer },
  },
  {
    id: 'nebula-4m',
    what: 'Nebula with listen.read_buffer/write_buffer 4 MiB',
    nebula: { socketBuffer: 4 * 1024 * 1024 },
  },
];

interface Args {
  readonly reps: number;
  readonly seconds: number;
  readonly only?: readonly string[];
  readonly gro: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const val = (flag: string): string | undefined =>
    argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined;
  const only = val('--only')?.split(',');
  const unknown = only?.filter((id) => !variants.some((v) => v.id === id)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `unknown variant(s) ${unknown.join(', ')}; known: ${variants.map((v) => v.id).join(', ')}`,
    );
  }
  return {
    reps: Number(val('--reps') ?? 3),
    seconds: Number(val('--seconds') ?? 4),
    ...(only === undefined ? {} : { only }),
    gro: argv.includes('--gro'),
  };
}

async function setGro(runner: ProcessRunner, bed: Testbed, on: boolean): Promise<void> {
  const state = on ? 'on' : 'off';
  for (const h of bed.hosts) {
    await runner.runChecked(['ethtool', '-K', h.dev, 'gro', state], { netns: h.netns });
    await runner.runChecked(['ethtool', '-K', `h${h.index}`, 'gro', state], { netns: bed.bridgeNetns });
  }
}

async function main(args: Args, state: TestbedBenchState): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark creates network namespaces');
  const runner = new ProcessRunner();
  const workDir = await mkdtemp(join(tmpdir(), 'nsm-dataplane-knobs-'));
  state.workDir = workDir;
  const procs = new BenchProcesses(runner, workDir);
  state.procs = procs;
  const bed = await testbedUp({ prefix, hosts: 2, runner });
  const [a, b] = bed.hosts as [(typeof bed.hosts)[0], (typeof bed.hosts)[0]];
  const ctx: TunnelContext = { runner, procs, a, b, workDir };
  const chosen = variants.filter((v) => args.only?.includes(v.id) ?? true);
  const rows: BenchTunnel[] = [];
  for (const [i, v] of chosen.entries()) {
    const common = { id: v.id, label: v.what, suffix: `k${i}`, subnet: `10.210.${i}` };
    if (v.nebula !== undefined) {
      rows.push(await nebula(ctx, { ...common, ...v.nebula, port: 4300 + i }));
      continue;
    }
    // The agent's own tuning (buffers, SCHED_BATCH) is off unless a variant asks for it: each row
    // changes one knob.
    const o = {
      agentUdpBuffer: 0,
      agentSchedBatch: false,
      ...common,
      ...(v.knobs ?? {}),
      backend: 'userspace' as const,
      port: 51900 + i,
    };
    switch (v.maker) {
      case 'hand':
        rows.push(await handWireGuard(ctx, o));
        break;
      case 'hand-detached':
        rows.push(await handWireGuard(ctx, { ...o, detached: true }));
        break;
      case 'forwarder':
        rows.push(await forwarderWireGuard(ctx, o));
        break;
      case 'port':
      case undefined:
        rows.push(await agentWireGuard(ctx, o));
        break;
    }
  }
  console.log(`wireguard-go knobs vs Nebula — ${new Date().toISOString()}`);
  console.log(
    `machine: ${cpus().length} CPUs, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; iperf3 ${args.seconds} s each way, medians of ${args.reps} interleaved reps`,
  );
  for (const t of rows) console.log(`  ${t.id.padEnd(12)} ${t.label} [${t.settings}]`);
  const phases = args.gro ? [false, true] : [false];
  for (const gro of phases) {
    if (args.gro) await setGro(runner, bed, gro);
    process.stderr.write(`phase GRO ${gro ? 'on' : 'off'}: ${rows.length} rows × ${args.reps} reps…\n`);
    const summary = await measureRows(rows, {
      runner,
      procs,
      clientNetns: b.netns,
      serverNetns: a.netns,
      reps: args.reps,
      seconds: args.seconds,
      pings: 100,
      pingIntervalS: 0.01,
      progress: (l) => process.stderr.write(`  ${l}\n`),
    });
    console.log('');
    console.log(`veth GRO ${gro ? 'on' : 'off (default)'}:`);
    console.log(formatTable(summary));
    console.log(relative(summary));
  }
}

function relative(rows: readonly RowSummary[]): string {
  const thr = (r: RowSummary | undefined): number => (r === undefined ? NaN : (r.fwdMbps + r.revMbps) / 2);
  const base = rows.find((r) => r.id === 'base');
  const neb = rows.find((r) => r.id === 'nebula');
  return rows
    .map(
      (r) =>
        `  ${r.id.padEnd(12)} ${fmt(thr(r), 0).padStart(5)} Mbit/s  vs base ${fmt(ratio(thr(r), thr(base)), 3)}  vs nebula ${fmt(ratio(thr(r), thr(neb)), 3)}`,
    )
    .join('\n');
}

process.exitCode = await runOnTestbed(prefix, (state) => main(parseArgs(process.argv.slice(2)), state));
