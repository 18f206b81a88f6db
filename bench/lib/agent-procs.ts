// Memory and CPU figures of the agent benchmark's processes, from /proc: VmRSS (status), PSS
// (smaps_rollup, when readable), utime+stime (stat), and the wireguard-go process behind a device.
import { readFileSync, readdirSync } from 'node:fs';
import { listWireGuardGoProcesses } from '../../src/host/wireguard/index.js';
import { clockTicksPerSecond, sampleProc } from './proc-stats.js';

export interface MemSample {
  readonly rssKb: number;
  /** VmRSS split: anonymous (heap, stacks) and file-backed (the executable's pages, shared libs). */
  readonly rssAnonKb: number;
  readonly rssFileKb: number;
  /** Proportional set size; undefined when smaps_rollup is not readable (old kernel, no permission). */
  readonly pssKb: number | undefined;
}

/** VmRSS and PSS of `pid`; throws when the process is gone (a figure of a dead agent is no figure). */
export function memOf(pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
  const rss = field('VmRSS');
  if (!Number.isFinite(rss)) throw new Error(`no VmRSS in /proc/${pid}/status`);
  let pssKb: number | undefined;
  try {
    const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1];
    pssKb = m === undefined ? undefined : Number(m);
  } catch {
    pssKb = undefined;
  }
  return { rssKb: rss, rssAnonKb: field('RssAnon'), rssFileKb: field('RssFile'), pssKb };
}

/** The pid of the wireguard-go process serving `device`, if there is one. */
export async function wireguardGoPid(device: string): Promise<number | undefined> {
  return (await listWireGuardGoProcesses()).find((p) => p.device === device)?.pid;
}

/** utime+stime of each pid over `seconds` of wall time, in % of one CPU (NaN for a pid that ended). */
export async function cpuOver(
  pids: readonly number[],
  seconds: number,
  during: () => Promise<void> = () => new Promise((r) => setTimeout(r, seconds * 1000)),
): Promise<number[]> {
  const before = pids.map(sampleProc);
  const t0 = performance.now();
  await during();
  const wall = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => {
    const a = before[i];
    const b = sampleProc(pid);
    if (a === undefined || b === undefined) return Number.NaN;
    // One USER_HZ tick (10 ms) of CPU in a 60 s window is 0.017 %.
    return (100 * (b.cpuTicks - a.cpuTicks)) / clockTicksPerSecond / wall;
  });
}

/**
 * CPU time `pid` has used, in ms, from the scheduler's per-thread nanosecond counters
 * (/proc/PID/task/TID/schedstat): `main` is the thread that runs the JavaScript (the pid's own),
 * `all` adds libuv's file-system pool and V8's GC helpers. Finer than utime+stime (10 ms ticks),
 * and unlike a wall-clock latency it barely moves when other work shares the machine: the figure
 * to compare two builds with on a busy box. Undefined when the process is gone.
 */
export function cpuMsOf(pid: number): { readonly main: number; readonly all: number } | undefined {
  const onCpuNs = (tid: string): number =>
    Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0] ?? NaN);
  try {
    let all = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        all += onCpuNs(tid);
      } catch {
        // a thread that ended between the listing and the read
      }
    }
    return { main: onCpuNs(String(pid)) / 1e6, all: all / 1e6 };
  } catch {
    return undefined;
  }
}

/** On-CPU ns of every thread on the machine: (pid, tid) → ns, and each pid's command name. */
function threadsNow(): { readonly ns: Map<string, number>; readonly comm: Map<number, string> } {
  const ns = new Map<string, number>();
  const comm = new Map<number, string>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
      comm.set(Number(p), readFileSync(`/proc/${p}/comm`, 'utf8').trim());
    } catch {
      continue; // ended while listed
    }
    for (const tid of tids) {
      try {
        ns.set(`${p}/${tid}`, Number(readFileSync(`/proc/${p}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
      } catch {
        // a thread that ended between the listing and the read
      }
    }
  }
  return { ns, comm };
}

export interface CensusRow {
  readonly label: string;
  /** On-CPU ms in the window: the process's main thread, and all its threads. */
  readonly mainMs: number;
  readonly allMs: number;
}

/**
 * Where the machine's CPU went between now and done(): every process that ran, by on-CPU ms (short
 * processes started and ended inside the window are counted when they were seen at done(); ones that
 * came and went in between are not, so the total is a lower bound). `labels` names known pids.
 */
export function cpuCensus(labels: ReadonlyMap<number, string>): { done(): CensusRow[] } {
  const before = threadsNow();
  return {
    done: () => {
      const after = threadsNow();
      const byPid = new Map<number, { main: number; all: number }>();
      for (const [key, ns] of after.ns) {
        const [p, tid] = key.split('/');
        const d = (ns - (before.ns.get(key) ?? 0)) / 1e6;
        if (d <= 0) continue;
        const row = byPid.get(Number(p)) ?? { main: 0, all: 0 };
        row.all += d;
        if (p === tid) row.main += d;
        byPid.set(Number(p), row);
      }
      return [...byPid]
        .map(([pid, r]) => ({
          label: labels.get(pid) ?? `${after.comm.get(pid) ?? '?'} (${pid})`,
          mainMs: r.main,
          allMs: r.all,
        }))
        .sort((a, b) => b.allMs - a.allMs);
    },
  };
}
