/** `--version`. */
import type { Command } from "../cli/options.ts";
import { VERSION } from "../util/version.ts";
import type { CommandIo } from "./types.ts";

/** Prints `gpu-bridge-host <version>`. */
export async function run(_command: Extract<Command, { kind: "version" }>, io: CommandIo): Promise<number> {
  await io.stdout(`gpu-bridge-host ${VERSION}\n`);
  return 0;
}
