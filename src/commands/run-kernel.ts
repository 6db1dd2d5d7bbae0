/** Internal: the per-job child process of the runners (a request on stdin, a result on stdout). */
import type { Command } from "../cli/options.ts";
import { runKernel } from "../job/run-kernel.ts";
import type { CommandIo } from "./types.ts";

/** Reads the request from stdin, runs the kernel, prints the outcome; 0 when it succeeded. */
export async function run(_command: Extract<Command, { kind: "run-kernel" }>, io: CommandIo): Promise<number> {
  const input = await io.stdin();
  const outcome = await runKernel(JSON.parse(input));
  await io.stdout(JSON.stringify(outcome) + "\n");
  return outcome.ok ? 0 : 1;
}
