/** `serve`, and `--publish --interval-ms`: the daemon until a signal. */
import type { BridgeOptions } from "./cli/options.ts";
import { runDaemon } from "./daemon/daemon.ts";
import { selectBackend } from "./inventory/mod.ts";
import type { Logger } from "./log.ts";
import { detectRuntime } from "./runtime/mod.ts";

/** Runs the daemon; resolves with the exit status. */
export async function daemonCommand(
  options: BridgeOptions,
  log: Logger,
  mode: "serve" | "compat",
  signal: Promise<string>,
): Promise<number> {
  const runtime = await detectRuntime();
  const backend = await selectBackend(options, log);
  if (!options.publish) log.info("not publishing (pass --publish to mirror into the VM)");
  return await runDaemon(options, { runtime, log, backend }, mode, signal);
}
