// Where an agent's time goes, from its own JSON log lines (info level is enough): the forwarder's
// applies ("forwarder applied changes", with ops and ms) and the agent-side connect time
// ("connected", with ms), within a wall-clock window.

export interface LogWindow {
  /** Forwarder applies in the window and their summed duration. */
  readonly applies: number;
  readonly applyMs: number;
  /** The longest single apply. */
  readonly applyMaxMs: number;
  /** Agent-side durations of the connects that finished in the window ("connected" ms). */
  readonly connectedMs: readonly number[];
  /** "heal: re-requesting the connection" lines in the window. */
  readonly heals: number;
}

/** Reads `log` (one JSON object a line; other lines are skipped) for lines with from ≤ time < to (epoch ms). */
export function logWindow(log: string, from: number, to: number): LogWindow {
  let applies = 0;
  let applyMs = 0;
  let applyMaxMs = 0;
  let heals = 0;
  const connectedMs: number[] = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: { time?: unknown; msg?: unknown; ms?: unknown };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    const t = typeof j.time === 'string' ? Date.parse(j.time) : typeof j.time === 'number' ? j.time : NaN;
    if (!(t >= from && t < to)) continue;
    const ms = typeof j.ms === 'number' ? j.ms : NaN;
    if (j.msg === 'forwarder applied changes' && Number.isFinite(ms)) {
      applies++;
      applyMs += ms;
      applyMaxMs = Math.max(applyMaxMs, ms);
    } else if (j.msg === 'connected' && Number.isFinite(ms)) connectedMs.push(ms);
    else if (j.msg === 'heal: re-requesting the connection') heals++;
  }
  return { applies, applyMs, applyMaxMs, connectedMs, heals };
}

/** Selected Node process figures from a Prometheus text page (prom-client's default metrics). */
export function heapFigures(metrics: string): Readonly<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of [
    'nodejs_heap_size_used_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_external_memory_bytes',
    'process_resident_memory_bytes',
  ]) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(metrics);
    if (m?.[1] !== undefined) out[name] = Number(m[1]);
  }
  // prom-client's GC histogram: seconds and count per kind (minor, major, incremental, weakcb).
  for (const m of metrics.matchAll(
    /^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} ([0-9.e+-]+)/gm,
  )) {
    out[`gc_${m[2] ?? ''}_${m[1] ?? ''}`] = Number(m[3]);
  }
  return out;
}

/** GC between two heapFigures readings, e.g. "major 2 × 31 ms, minor 14 × 22 ms" ('—' without the metric). */
export function gcBetween(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): string {
  const kinds = ['major', 'incremental', 'minor', 'weakcb'];
  const parts = kinds
    .map((k) => ({
      k,
      n: (after[`gc_${k}_count`] ?? 0) - (before[`gc_${k}_count`] ?? 0),
      ms: ((after[`gc_${k}_sum`] ?? 0) - (before[`gc_${k}_sum`] ?? 0)) * 1000,
    }))
    .filter((x) => x.n > 0)
    .map((x) => `${x.k} ${x.n} × ${x.ms.toFixed(0)} ms`);
  if (after['gc_minor_count'] === undefined && after['gc_major_count'] === undefined) return '—';
  return parts.length === 0 ? 'none' : parts.join(', ');
}
