/**
 * Statistics shared by `stowage bench` and the benchmark suite in `bench/`: medians and
 * percentiles of samples, computed the same way everywhere so figures compare.
 */

/**
 * The `p`-th percentile (0–100) of `values` by linear interpolation between the closest ranks
 * (the method of NumPy's default and of most spreadsheets). `NaN` for no values.
 *
 * @example percentile([1, 2, 3, 4], 50) // 2.5
 */
export function percentile(values: readonly number[], p: number): number {
  return percentileOfSorted(Float64Array.from(values).sort(), p);
}

/** {@link percentile} of values already sorted ascending (no copy, no sort). */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  return lowValue + (rank - low) * ((sorted[high] as number) - lowValue);
}

/** The median (50th percentile) of `values`; `NaN` for none. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * `value / baseline`, or `undefined` when either is missing or not a positive finite number
 * (a ratio against a competitor that did not run is not a ratio).
 */
export function ratio(value: number | undefined, baseline: number | undefined): number | undefined {
  if (value === undefined || baseline === undefined) return undefined;
  if (!Number.isFinite(value) || !Number.isFinite(baseline) || baseline <= 0 || value < 0) return undefined;
  return value / baseline;
}

/** Latency summary of one set of samples, in milliseconds. */
export interface LatencySummary {
  p50: number;
  p99: number;
  min: number;
  max: number;
  count: number;
}

export function summarizeLatencies(samplesMs: readonly number[]): LatencySummary {
  if (samplesMs.length === 0) return { p50: NaN, p99: NaN, min: NaN, max: NaN, count: 0 };
  const sorted = Float64Array.from(samplesMs).sort();
  return {
    p50: percentileOfSorted(sorted, 50),
    p99: percentileOfSorted(sorted, 99),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    count: sorted.length,
  };
}

/** Milliseconds with a unit that keeps 3 significant digits: "1.23 µs", "45.6 ms", "1.20 s". */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1e-3) return `${(ms * 1e6).toPrecision(3)} ns`;
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1000).toPrecision(3)} s`;
}
