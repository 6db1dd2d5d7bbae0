/** The one-shot tools: `telemetry push`, `telemetry export`, `models import`. */
import process from "node:process";
import { findApiToken, tokenPath } from "../api/auth.ts";
import type { Command } from "../cli/options.ts";
import type { Logger } from "../util/log.ts";
import { importModel } from "../models/import.ts";
import { exportTelemetry, pushTelemetry } from "../telemetry/cli.ts";

type Tool = Extract<Command, { kind: "telemetry-push" | "telemetry-export" | "models-import" }>;

/** Runs a tool; resolves with the exit status (errors propagate with their message). */
export async function toolCommand(c: Tool, log: Logger): Promise<number> {
  switch (c.kind) {
    case "telemetry-push": {
      const found = findApiToken(c.apiToken, process.env, c.stateDir);
      if (found === null) {
        throw new Error(
          `No API token: pass --api-token, set GPU_BRIDGE_API_TOKEN, or point --state-dir at the bridge's (${tokenPath(c.stateDir)} is missing)`,
        );
      }
      await pushTelemetry({ file: c.file, url: c.url, token: found.token }, log);
      return 0;
    }
    case "telemetry-export":
      exportTelemetry({ stateDir: c.stateDir, out: c.out, ...(c.sinceMs !== undefined && { sinceMs: c.sinceMs }) }, log);
      return 0;
    case "models-import": {
      importModel({
        bundle: c.bundle,
        id: c.id,
        registry: c.registry,
        ...(c.parent !== undefined && { parent: c.parent }),
        ...(c.jobId !== undefined && { jobId: c.jobId }),
        ...(c.approval !== undefined && { approval: c.approval }),
      });
      log.info(`imported ${c.bundle} as ${c.id} into ${c.registry}/available/${c.id}`);
      return 0;
    }
  }
}
