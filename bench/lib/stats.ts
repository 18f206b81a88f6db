// Small statistics for benchmark samples: medians over repetitions, percentiles over ping RTTs.

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100); NaN for no samples, so a missing figure shows as such. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** a/b, NaN when either is missing or b is 0. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN;
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '—';
}

/** Round-by-round ratios a[i]/b[i]: their median and quartiles (the spread of the comparison). */
export function pairedRatio(
  a: readonly number[],
  b: readonly number[],
): { median: number; p25: number; p75: number; n: number } {
  const r: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = ratio(a[i]!, b[i]!);
    if (Number.isFinite(x)) r.push(x);
  }
  return { median: median(r), p25: percentile(r, 25), p75: percentile(r, 75), n: r.length };
}
