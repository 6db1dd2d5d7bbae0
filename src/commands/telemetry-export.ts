/** `telemetry export --out FILE [--since T]`: the spooled records as one CBOR bundle. */
import type { Command } from "../cli/options.ts";
import { exportTelemetry } from "../telemetry/cli.ts";
import type { CommandIo } from "./types.ts";

/** Writes the bundle; resolves with the exit status (errors propagate with their message). */
export function run(c: Extract<Command, { kind: "telemetry-export" }>, io: CommandIo): Promise<number> {
  exportTelemetry({ stateDir: c.stateDir, out: c.out, ...(c.sinceMs !== undefined && { sinceMs: c.sinceMs }) }, io.logger("info"));
  return Promise.resolve(0);
}
