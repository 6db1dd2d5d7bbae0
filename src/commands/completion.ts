/** `completion bash|zsh|fish`: the shell's completion script, generated from the flag tables. */
import type { Command } from "../cli/options.ts";
import { completionScript } from "../cli/completion.ts";
import type { CommandIo } from "./types.ts";

/** Prints the completion script of `command.shell`. */
export async function run(command: Extract<Command, { kind: "completion" }>, io: CommandIo): Promise<number> {
  await io.stdout(completionScript(command.shell));
  return 0;
}
