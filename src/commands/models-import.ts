/** `models import DIR --id ID --registry REG`: stages an adapter bundle as a registry entry. */
import type { Command } from "../cli/options.ts";
import { importModel } from "../models/import.ts";
import type { CommandIo } from "./types.ts";

/** Imports the bundle; resolves with the exit status (errors propagate with their message). */
export function run(c: Extract<Command, { kind: "models-import" }>, io: CommandIo): Promise<number> {
  importModel({
    bundle: c.bundle,
    id: c.id,
    registry: c.registry,
    ...(c.parent !== undefined && { parent: c.parent }),
    ...(c.jobId !== undefined && { jobId: c.jobId }),
    ...(c.approval !== undefined && { approval: c.approval }),
    ...(c.fromExport !== undefined && { fromExport: c.fromExport }),
  });
  io.logger("info").info(`imported ${c.bundle} as ${c.id} into ${c.registry}/available/${c.id}`);
  return Promise.resolve(0);
}
