/** `audit verify DIR`: checks an audit trail's chain; exit 1 naming the first bad record. */
import { existsSync } from "node:fs";
import type { Command } from "../cli/options.ts";
import { verifyTrail } from "../audit/verify.ts";
import type { CommandIo } from "./types.ts";

/** Prints the verdict; 0 when the trail is whole, 1 when not. */
export async function run(c: Extract<Command, { kind: "audit-verify" }>, io: CommandIo): Promise<number> {
  if (!existsSync(c.dir)) throw new Error(`Cannot verify ${c.dir}: no such folder (the trail is <state-dir>/audit)`);
  const v = verifyTrail(c.dir);
  if (c.json) {
    await io.stdout(JSON.stringify(v) + "\n");
    return v.ok ? 0 : 1;
  }
  if (!v.ok) {
    await io.stdout(`BROKEN ${v.file}:${v.line}: ${v.problem}\n`);
    return 1;
  }
  const range = v.changes === 0 ? "no changes" : `${v.changes} changes (${v.firstId}..${v.lastId})`;
  const lines = [`OK ${range} in ${v.files} file${v.files === 1 ? "" : "s"}; last hash ${v.lastHash}`];
  if (v.startsAfter !== null) {
    lines.push(`note: the trail starts after ${v.startsAfter} (older files were dropped); checked from its anchor`);
  }
  if (v.tornTail !== null) {
    lines.push(`note: the last file ends in ${v.tornTail} bytes of a torn write (the bridge moves them aside at its next start)`);
  }
  await io.stdout(lines.join("\n") + "\n");
  return 0;
}
