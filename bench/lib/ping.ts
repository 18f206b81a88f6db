// ping runner: per-packet RTTs parsed from the output, so p99 comes from the samples, not from ping's summary.
import type { CommandRunner } from '../../src/host/command-runner.js';
import { mean, percentile } from './stats.js';

export interface PingResult {
  readonly sent: number;
  readonly received: number;
  readonly rttsMs: readonly number[];
  readonly avgMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface PingOptions {
  readonly netns: string;
  readonly target: string;
  readonly count: number;
  /** Seconds between pings; below 0.2 needs root. */
  readonly intervalS: number;
  readonly size?: number;
}

export async function runPing(runner: CommandRunner, o: PingOptions): Promise<PingResult> {
  const argv = [
    'ping',
    '-n',
    '-c',
    String(o.count),
    '-i',
    String(o.intervalS),
    '-W',
    '1',
    ...(o.size === undefined ? [] : ['-s', String(o.size)]),
    o.target,
  ];
  const r = await runner.run(argv, { netns: o.netns, timeoutMs: (o.count * o.intervalS + 10) * 1_000 });
  const res = parsePing(r.stdout);
  if (res.sent === 0) {
    throw new Error(
      `ping ${o.target} from ${o.netns} printed no summary (exit ${r.code}): ${r.stderr.trim()}; check the tunnel and that ping runs as root`,
    );
  }
  return res;
}

export function parsePing(text: string): PingResult {
  const rtts: number[] = [];
  for (const m of text.matchAll(/time=([\d.]+) ms/g)) rtts.push(Number(m[1]));
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(text);
  return {
    sent: Number(summary?.[1] ?? 0),
    received: Number(summary?.[2] ?? 0),
    rttsMs: rtts,
    avgMs: mean(rtts),
    p50Ms: percentile(rtts, 50),
    p99Ms: percentile(rtts, 99),
  };
}
