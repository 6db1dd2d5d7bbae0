/** `config check FILE`: a `--config` file checked as serve would take it, and what it sets. */
import process from "node:process";
import type { Command } from "../cli/options.ts";
import { configured, readConfigArgv } from "../cli/config-file.ts";
import type { CommandIo } from "./types.ts";

/** Prints what the file sets (exit 0), or throws the message serve would refuse it with. */
export async function run(c: Extract<Command, { kind: "config-check" }>, io: CommandIo): Promise<number> {
  const settings = readConfigArgv(c.file);
  // Checked whole, with every rule that spans flags (a remote --listen needs a token, ...).
  configured("serve", { file: c.file, argv: [] }, process.env);
  const lines = settings.map((f) => `  ${f.replace(/^--/, "").replace(/=/, " = ")}\n`).join("");
  await io.stdout(
    `${c.file}: ok, ${settings.length} setting${settings.length === 1 ? "" : "s"}${settings.length > 0 ? ":" : ""}\n${lines}`,
  );
  return 0;
}
