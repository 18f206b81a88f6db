// Process statistics from /proc: CPU time (utime + stime of all threads, /proc/<pid>/stat) and
// resident memory (VmRSS in /proc/<pid>/status), and a sampler that measures both over a window.
import { readFileSync, readdirSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime. 100 on every Linux architecture Node runs on. */
export const clockTicksPerSecond = 100;

export interface ProcSample {
  readonly pid: number;
  /** utime + stime, in clock ticks. */
  readonly cpuTicks: number;
  readonly rssKb: number;
  /** Context switches (voluntary + involuntary) of all the process' threads so far. */
  readonly ctxSwitches: number;
}

/** Parses /proc/<pid>/stat; the command name (field 2) may contain blanks and parentheses. */
export function parseStatCpuTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`cannot read utime/stime from /proc/<pid>/stat: ${stat.slice(0, 80)}`);
  }
  return utime + stime;
}

export function parseStatusRssKb(status: string): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

export function parseStatusCtxSwitches(status: string): number {
  let n = 0;
  for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
  return n;
}

function threadCtxSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      n += parseStatusCtxSwitches(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    } catch {
      // the thread ended while we looked
    }
  }
  return n;
}

/** One sample, or undefined when the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    return {
      pid,
      cpuTicks: parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')),
      rssKb: parseStatusRssKb(readFileSync(`/proc/${pid}/status`, 'utf8')),
      ctxSwitches: threadCtxSwitches(pid),
    };
  } catch {
    return undefined;
  }
}

export interface ProcWindow {
  /** CPU used by all the processes together, in percent of one CPU. */
  readonly cpuPercent: number;
  /** Highest VmRSS seen per process during the window, summed over the processes, in KiB. */
  readonly rssKb: number;
  /** Highest VmRSS seen per process, in the order of the pids. */
  readonly rssKbEach: readonly number[];
  /** Context switches per second of all threads of all the processes (threads that ended are not counted). */
  readonly ctxSwitchesPerSecond: number;
}

/**
 * Measures CPU and peak RSS of `pids` while `during` runs: CPU from the difference of utime+stime
 * over the wall time, RSS sampled every `intervalMs`.
 */
export async function measureProcs<T>(
  pids: readonly number[],
  during: () => Promise<T>,
  intervalMs = 250,
): Promise<{ result: T; window: ProcWindow }> {
  const start = pids.map(sampleProc);
  const peak = start.map((s) => s?.rssKb ?? 0);
  const t0 = process.hrtime.bigint();
  const timer = setInterval(() => {
    pids.forEach((pid, i) => {
      const s = sampleProc(pid);
      if (s !== undefined) peak[i] = Math.max(peak[i] ?? 0, s.rssKb);
    });
  }, intervalMs);
  try {
    const result = await during();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    let ticks = 0;
    let switches = 0;
    pids.forEach((pid, i) => {
      const a = start[i];
      const b = sampleProc(pid);
      if (a !== undefined && b !== undefined) {
        ticks += b.cpuTicks - a.cpuTicks;
        switches += b.ctxSwitches - a.ctxSwitches;
        peak[i] = Math.max(peak[i] ?? 0, b.rssKb);
      }
    });
    return {
      result,
      window: {
        cpuPercent: (100 * ticks) / clockTicksPerSecond / seconds,
        rssKb: peak.reduce((a, b) => a + b, 0),
        rssKbEach: peak,
        ctxSwitchesPerSecond: switches / seconds,
      },
    };
  } finally {
    clearInterval(timer);
  }
}
