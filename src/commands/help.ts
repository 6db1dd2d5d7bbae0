/** `--help` and `<command> --help`: the usage text of the topic. */
import type { Command } from "../cli/options.ts";
import {
  AUDIT_USAGE,
  CDI_USAGE,
  COMPLETION_USAGE,
  CONFIG_USAGE,
  CONSOLE_USAGE,
  DOCTOR_USAGE,
  MOCK_CONSOLE_USAGE,
  MODELS_USAGE,
  PEFT_USAGE,
  SERVE_USAGE,
  STATS_USAGE,
  TELEMETRY_USAGE,
  TOKENS_USAGE,
  USAGE,
  VRAM_USAGE,
} from "../cli/usage.ts";
import type { CommandIo } from "./types.ts";

const TOPICS: Readonly<Record<string, string>> = {
  "mock-console": MOCK_CONSOLE_USAGE,
  console: CONSOLE_USAGE,
  serve: SERVE_USAGE,
  stats: STATS_USAGE,
  doctor: DOCTOR_USAGE,
  telemetry: TELEMETRY_USAGE,
  models: MODELS_USAGE,
  peft: PEFT_USAGE,
  audit: AUDIT_USAGE,
  vram: VRAM_USAGE,
  tokens: TOKENS_USAGE,
  config: CONFIG_USAGE,
  cdi: CDI_USAGE,
  completion: COMPLETION_USAGE,
};

/** Prints the help of `command.topic` (or the general help). */
export async function run(command: Extract<Command, { kind: "help" }>, io: CommandIo): Promise<number> {
  await io.stdout(TOPICS[command.topic ?? ""] ?? USAGE);
  return 0;
}
