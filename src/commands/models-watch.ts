/** `models watch --exec CMD`: runs CMD on every activation (src/models/exec-watch.ts) until interrupted. */
import type { Command } from "../cli/options.ts";
import { shellRunner, watchActivations } from "../models/exec-watch.ts";
import { stopSignal } from "../util/signals.ts";
import type { CommandIo } from "./types.ts";

/** Watches until SIGINT or SIGTERM; resolves 0 then. */
export async function run(c: Extract<Command, { kind: "models-watch" }>, io: CommandIo): Promise<number> {
  const log = io.logger("info", "models-watch", c.apiToken === undefined ? [] : [c.apiToken]);
  const stop = new AbortController();
  void stopSignal().then((name) => stop.abort(new Error(name)));
  await watchActivations({
    url: c.url,
    command: c.exec,
    ...(c.apiToken !== undefined && { token: c.apiToken }),
    run: shellRunner,
    log,
    signal: stop.signal,
  });
  return 0;
}
