/**
 * The compatible command: `--list`, `--publish` (once), and `--publish --interval-ms` (the
 * daemon, as `serve` runs it). `--mock --list` is the benchmarked start-up path: it loads no
 * socket, HTTP or file-system code.
 */
import type { Command } from "../cli/options.ts";
import { currentNamespace } from "../app/namespace.ts";
import { renderList } from "../contract/list.ts";
import { stopSignal } from "../util/signals.ts";
import type { CommandIo } from "./types.ts";

/** Lists and/or publishes; resolves with the exit status. */
export async function run(command: Extract<Command, { kind: "bridge" }>, io: CommandIo): Promise<number> {
  const { options, warnings } = command.config === undefined
    ? command
    : (await import("../cli/config-file.ts")).configured("bridge", command.config, process.env);
  const log = io.logger(options.logLevel, "bridge", [options.authToken]);
  for (const w of warnings) log.warn(w);
  if (options.publish && options.intervalMs !== undefined) {
    // Before anything slow: a SIGTERM during start-up must still end in a clean exit.
    const signal = stopSignal();
    const { daemonCommand } = await import("./serve.ts");
    return await daemonCommand(options, log, "compat", signal, io);
  }
  const ns = await currentNamespace(options, log);
  if (options.list) await io.stdout(renderList(ns));
  if (!options.publish) return 0;
  const { publishCommand } = await import("./publish.ts");
  return await publishCommand(options, ns, log);
}
