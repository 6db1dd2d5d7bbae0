/** The one-shot tools: `telemetry push`, `telemetry export`, `models import`. */
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import type { Command } from "./cli/options.ts";
import type { Logger } from "./log.ts";
import { importModel } from "./models/import.ts";
import { exportTelemetry, pushTelemetry } from "./telemetry/cli.ts";

type Tool = Extract<Command, { kind: "telemetry-push" | "telemetry-export" | "models-import" }>;

/** Runs a tool; resolves with the exit status (errors propagate with their message). */
export async function toolCommand(c: Tool, log: Logger): Promise<number> {
  switch (c.kind) {
    case "telemetry-push": {
      const fromFile = `${c.stateDir}/api-token`;
      const token = c.apiToken ?? process.env.GPU_BRIDGE_API_TOKEN?.trim() ??
        (existsSync(fromFile) ? readFileSync(fromFile, "utf8").trim() : undefined);
      if (!token) throw new Error(`No API token: pass --api-token, set GPU_BRIDGE_API_TOKEN, or point --state-dir at the bridge's (${fromFile} is missing)`);
      await pushTelemetry({ file: c.file, url: c.url, token }, log);
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
