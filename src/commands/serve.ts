/** `serve`, and `--publish --interval-ms`: the daemon until a signal. */
import { namespaceOf } from "../app/namespace.ts";
import type { BridgeOptions, Command } from "../cli/options.ts";
import { runDaemon } from "../app/daemon.ts";
import { selectBackend } from "../inventory/mod.ts";
import type { Logger } from "../util/log.ts";
import { renderList } from "../contract/list.ts";
import { detectRuntime } from "../runtime/mod.ts";
import { stopSignal } from "../util/signals.ts";
import type { CommandIo } from "./types.ts";

/** `serve`: the daemon with its API; resolves with the exit status. */
export async function run(command: Extract<Command, { kind: "serve" }>, io: CommandIo): Promise<number> {
  // Before anything slow: a SIGTERM during start-up must still end in a clean exit.
  const signal = stopSignal();
  const { options, warnings } = command.config === undefined
    ? command
    : (await import("../cli/config-file.ts")).configured("serve", command.config, process.env);
  const log = io.logger(options.logLevel, "bridge", [options.authToken]);
  for (const w of warnings) log.warn(w);
  return await daemonCommand(options, log, "serve", signal, io);
}

/** Runs the daemon (printing `--list` first, from the same backend); resolves with the exit status. */
export async function daemonCommand(
  options: BridgeOptions,
  log: Logger,
  mode: "serve" | "compat",
  signal: Promise<string>,
  io: Pick<CommandIo, "stdout">,
): Promise<number> {
  const runtime = await detectRuntime();
  const backend = await selectBackend(options, log);
  if (options.list) await io.stdout(renderList(await namespaceOf(backend, options.registry, log)));
  if (!options.publish) log.info("not publishing (pass --publish to mirror into the VM)");
  return await runDaemon(options, { runtime, log, backend }, mode, signal);
}
