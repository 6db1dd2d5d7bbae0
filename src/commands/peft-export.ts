/** `gpu-bridge-host peft export`: pulls a LoRA export job from the Queen (src/console/peft-export.ts). */
import type { Command } from "../cli/options.ts";
import { peftExport } from "../console/peft-export.ts";
import { detectRuntime } from "../runtime/mod.ts";
import type { Connect } from "../runtime/transport.ts";
import type { CommandIo } from "./types.ts";

/** Pulls and writes the job; prints what it wrote. Errors reach the entry point (exit 1). */
export async function run(command: Extract<Command, { kind: "peft-export" }>, io: CommandIo, connect?: Connect): Promise<number> {
  const r = await peftExport(connect ?? (await detectRuntime()).connect, command.request);
  const sizes = Object.entries(r.bytes).map(([f, n]) => `${f} ${n} bytes`).join(", ");
  await io.stdout(`exported ${r.job} (${r.frames} telemetry frames, base model ${r.baseModel}) to ${r.dir}: ${sizes}\n`);
  return 0;
}
