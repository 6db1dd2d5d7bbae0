/** `telemetry export --out FILE [--since T]`: the spooled records as one CBOR bundle. */
import process from "node:process";
import { type Command, defaultStateDir } from "../cli/options.ts";
import { exportTelemetry } from "../telemetry/cli.ts";
import { clientStateDir } from "../util/state-dir.ts";
import type { CommandIo } from "./types.ts";

/** Writes the bundle; resolves with the exit status (errors propagate with their message). */
export function run(c: Extract<Command, { kind: "telemetry-export" }>, io: CommandIo): Promise<number> {
  const log = io.logger("info");
  const state = clientStateDir(c.stateDir, defaultStateDir(process.env), "telemetry");
  if (state.fellBack) log.info(`reading make run's spool in ${state.dir} (${c.stateDir} has none; --state-dir picks another)`);
  exportTelemetry({ stateDir: state.dir, out: c.out, ...(c.sinceMs !== undefined && { sinceMs: c.sinceMs }) }, log);
  return Promise.resolve(0);
}
