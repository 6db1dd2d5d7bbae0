/** `telemetry push FILE`: posts NDJSON records to the running bridge's API. */
import process from "node:process";
import { findApiToken, tokenPath } from "../api/auth.ts";
import { type Command, defaultStateDir } from "../cli/options.ts";
import { pushTelemetry } from "../telemetry/cli.ts";
import { clientStateDir, MAKE_RUN_STATE_DIR } from "../util/state-dir.ts";
import type { CommandIo } from "./types.ts";

/** Pushes the file; resolves with the exit status (errors propagate with their message). */
export async function run(c: Extract<Command, { kind: "telemetry-push" }>, io: CommandIo): Promise<number> {
  const log = io.logger("info");
  const state = clientStateDir(c.stateDir, defaultStateDir(process.env), "api-token");
  const found = findApiToken(c.apiToken, process.env, state.dir);
  if (found === null) {
    throw new Error(
      `No API token: pass --api-token, set GPU_BRIDGE_API_TOKEN, or point --state-dir at the bridge's state folder ` +
        `(make run's is ${MAKE_RUN_STATE_DIR}; ${tokenPath(state.dir)} is missing)`,
    );
  }
  if (found.source.kind === "file" && state.fellBack) {
    log.info(`using make run's API token ${found.source.path} (${tokenPath(c.stateDir)} is missing; --state-dir picks another)`);
  }
  const from = found.source.kind === "flag" ? "--api-token" : found.source.kind === "env" ? "GPU_BRIDGE_API_TOKEN" : found.source.path;
  await pushTelemetry({ file: c.file, url: c.url, token: found.token, tokenFrom: from }, log);
  return 0;
}
