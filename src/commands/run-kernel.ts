/** Internal: the per-job child process of the runners (a request on stdin, a result on stdout). */
import type { Command } from "../cli/options.ts";
import { armParentDeath, runKernel } from "../job/run-kernel.ts";
import type { CommandIo } from "./types.ts";

/** Reads the request from stdin, runs the kernel, prints the outcome; 0 when it succeeded. */
export async function run(_command: Extract<Command, { kind: "run-kernel" }>, io: CommandIo): Promise<number> {
  const input = await io.stdin();
  const request = JSON.parse(input);
  // The child must not outlive the bridge that started it (a SIGKILLed daemon included).
  await armParentDeath(request.parentPid);
  const outcome = await runKernel(request);
  await io.stdout(JSON.stringify(outcome) + "\n");
  return outcome.ok ? 0 : 1;
}
