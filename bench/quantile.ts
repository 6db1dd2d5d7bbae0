/** The value at fraction `p` (0 to 1) of `xs` in ascending order: 0.5 is the median, 0.99 the p99. */
export function quantile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
