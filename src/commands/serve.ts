/** `serve`, and `--publish --interval-ms`: the daemon until a signal. */
import { namespaceOf } from "../app/namespace.ts";
import type { BridgeOptions } from "../cli/options.ts";
import { runDaemon } from "../app/daemon.ts";
import { selectBackend } from "../inventory/mod.ts";
import type { Logger } from "../util/log.ts";
import { renderList } from "../contract/list.ts";
import { detectRuntime } from "../runtime/mod.ts";
import { writeStdout } from "../runtime/stdio.ts";

/** Runs the daemon (printing `--list` first, from the same backend); resolves with the exit status. */
export async function daemonCommand(
  options: BridgeOptions,
  log: Logger,
  mode: "serve" | "compat",
  signal: Promise<string>,
): Promise<number> {
  const runtime = await detectRuntime();
  const backend = await selectBackend(options, log);
  if (options.list) await writeStdout(renderList(await namespaceOf(backend, options.registry, log)));
  if (!options.publish) log.info("not publishing (pass --publish to mirror into the VM)");
  return await runDaemon(options, { runtime, log, backend }, mode, signal);
}
