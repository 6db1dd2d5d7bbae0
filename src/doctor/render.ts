/** The doctor's report for people (a list under section headings) and for machines (one JSON object). */
import type { DoctorReport } from "./mod.ts";
import type { Status } from "./types.ts";

const MARK: Readonly<Record<Status, string>> = { ok: "✓", fail: "✗", warn: "!", info: "·" };

/** One line per check, `✓`/`✗`/`!`/`·`, each problem's fix beneath it, and a verdict. */
export function renderText(r: DoctorReport): string {
  const lines: string[] = [];
  let section = "";
  for (const c of r.checks) {
    if (c.section !== section) {
      section = c.section;
      lines.push(`${lines.length > 0 ? "\n" : ""}${section}:`);
    }
    lines.push(`  ${MARK[c.status]} ${c.name}: ${c.detail}`);
    if (c.fix !== undefined) lines.push(`      fix: ${c.fix}`);
  }
  const count = (s: Status) => r.checks.filter((c) => c.status === s).length;
  lines.push(
    "",
    r.ok
      ? `ok: everything these flags need works (${count("ok")} passed, ${count("warn")} warnings)`
      : `not ready: ${count("fail")} check(s) failed (${count("ok")} passed, ${count("warn")} warnings)`,
  );
  return lines.join("\n") + "\n";
}

/** The same report as one object. */
export const renderJson = (r: DoctorReport) =>
  JSON.stringify({ schema: "gpu-bridge-doctor/v1", ok: r.ok, checks: r.checks }, null, 2) + "\n";
