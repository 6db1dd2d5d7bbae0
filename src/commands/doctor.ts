/** `gpu-bridge-host doctor [--json]`: the host's readiness as a list of checks; exit 0 only when all needed pass. */
import process from "node:process";
import type { Command } from "../cli/options.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { runDoctor } from "../doctor/mod.ts";
import { renderJson, renderText } from "../doctor/render.ts";
import type { CommandIo } from "./types.ts";

/** Runs the checks and prints the report; resolves with 0 when nothing needed failed. */
export async function run(command: Extract<Command, { kind: "doctor" }>, io: CommandIo): Promise<number> {
  const o = command.options;
  const report = await runDoctor(
    {
      backend: o.backend,
      sysRoot: o.sysRoot,
      devRoot: o.devRoot,
      stateDir: o.stateDir,
      spoolMaxBytes: o.spoolMaxBytes,
      cdiSpecDirs: DEFAULTS.cdiSpecDirs,
      console: o.console === null ? null : { ...o.console, role: "queen" },
      timeoutMs: o.timeoutMs,
    },
    {
      env: process.env,
      adapter: async () => (await import("../../ffi/loader.ts")).loadFfiAdapter(),
      connect: async () => (await import("../runtime/mod.ts")).detectRuntime().then((r) => r.connect),
      uid: process.getuid?.() ?? -1,
    },
  );
  // The token never reaches the output: a console's refusal could echo it.
  let text = o.json ? renderJson(report) : renderText(report);
  for (const s of command.secrets) if (s.length >= 4) text = text.replaceAll(s, "***");
  await io.stdout(text);
  return report.ok ? 0 : 1;
}
