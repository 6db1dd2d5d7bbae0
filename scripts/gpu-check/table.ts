/** The one table gpu-check prints: a row per step, with its verdict, its figure and what it saw. */

export interface Row {
  readonly step: string;
  readonly ok: boolean;
  /** The step's measured figure ("412 ms", "18.2 GB/s"), or "" when it has none. */
  readonly figure: string;
  readonly detail: string;
}

export const pass = (step: string, figure: string, detail = ""): Row => ({ step, ok: true, figure, detail });
export const fail = (step: string, detail: string, figure = ""): Row => ({ step, ok: false, figure, detail });

/** Columns padded to their widest cell; the detail column last, unpadded, so long text stays readable. */
export function renderTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [r.step, r.ok ? "PASS" : "FAIL", r.figure, oneLine(r.detail)] as const);
  const head = ["step", "result", "figure", "detail"] as const;
  const width = (i: number) => Math.max(head[i]!.length, ...cells.map((c) => c[i]!.length));
  const line = (c: readonly string[]) => [0, 1, 2].map((i) => c[i]!.padEnd(width(i))).join("  ") + "  " + c[3];
  const failed = rows.filter((r) => !r.ok).length;
  return [
    line(head).trimEnd(),
    [0, 1, 2].map((i) => "-".repeat(width(i))).concat("------").join("  "),
    ...cells.map((c) => line(c).trimEnd()),
    "",
    failed === 0 ? `gpu-check: all ${rows.length} steps passed` : `gpu-check: ${failed} of ${rows.length} steps FAILED`,
  ].join("\n") + "\n";
}

/** A cell never breaks the table: newlines become " | ", runs of spaces one space. */
const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " | ").replace(/[ \t]+/g, " ").trim();

export const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`;
export const gbs = (bytes: number, millis: number) => `${(bytes / 1e9 / (millis / 1000)).toFixed(2)} GB/s`;
