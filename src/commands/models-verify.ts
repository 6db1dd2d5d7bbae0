/** `models verify [ID] --registry DIR`: re-hashes a model's files and its ancestry (src/models/verify.ts). */
import type { Command } from "../cli/options.ts";
import { loadRegistry } from "../models/registry.ts";
import { formatReport, verifyModel } from "../models/verify.ts";
import type { CommandIo } from "./types.ts";

/** Prints what was checked and found; 0 when everything matches, 1 when anything differs. */
export async function run(c: Extract<Command, { kind: "models-verify" }>, io: CommandIo): Promise<number> {
  let id = c.id;
  if (id === undefined) {
    const { catalog } = loadRegistry(c.registry);
    if (catalog.source !== "registry") {
      throw new Error(`Cannot verify: ${c.registry} is not a usable registry; name a model or fix the registry`);
    }
    id = catalog.active;
  }
  const report = verifyModel(c.registry, id);
  await io.stdout(c.json ? JSON.stringify(report) + "\n" : formatReport(report));
  return report.ok ? 0 : 1;
}
