/**
 * `models import DIR --id ID`: stages a trained adapter bundle (`adapter.safetensors`,
 * `lora.json`, optional metrics) into `<registry>/available/<id>/` with a `manifest.toml` that
 * records the parent model and its manifest's hash (the link of the provenance chain that
 * `models verify` checks), the training job, the telemetry window, the approval status and each
 * artefact's SHA-256 and size; with `--from-export`, the Queen export bundle the job came from
 * (src/models/export-bundle.ts) names the parent and the job, and its files' hashes are recorded.
 * Everything the VM would refuse is refused up front, and the model appears whole or not at all
 * (staged in a hidden folder, then renamed).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { replaceFileDurably } from "../util/files.ts";
import { join } from "node:path";
import process from "node:process";
import { LIMITS, modelIdProblem } from "../contract/limits.ts";
import { sha256Hex } from "../util/sha256.ts";
import { registryModelIds } from "./registry.ts";
import { byteLength } from "../util/bytes.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { ImportError } from "./errors.ts";
import { type ExportBundle, readExportBundle } from "./export-bundle.ts";
import { approvalTable, manifestSha256, tomlString as toml } from "./manifest.ts";

export { ImportError };

export interface ImportOptions {
  readonly bundle: string;
  readonly id: string;
  readonly registry: string;
  readonly parent?: string;
  readonly jobId?: string;
  readonly approval?: "pending" | "approved" | "rejected";
  /** A Queen export bundle (`/queen/export/lora_jobs/<job>/` copied out) the adapter was trained from. */
  readonly fromExport?: string;
}

const REQUIRED = ["adapter.safetensors", "lora.json"];
const OPTIONAL = ["metrics.json", "metrics.csv", "metrics.txt"];

/** Imports the bundle; returns the manifest written. */
export function importModel(o: ImportOptions): string {
  const problem = modelIdProblem(o.id);
  if (problem !== null) throw new ImportError(`Cannot import: model id ${JSON.stringify(o.id)} ${problem}`);
  if (o.id.startsWith(".")) throw new ImportError(`Cannot import: model id ${JSON.stringify(o.id)} must not start with '.'`);
  for (const f of REQUIRED) {
    if (!existsSync(join(o.bundle, f))) throw new ImportError(`Cannot import ${o.bundle}: it has no ${f}`);
  }
  let lora: Record<string, unknown>;
  try {
    lora = JSON.parse(readFileSync(join(o.bundle, "lora.json"), "utf8"));
    if (typeof lora !== "object" || lora === null || Array.isArray(lora)) throw new Error("not an object");
  } catch (error) {
    throw new ImportError(`Cannot import ${o.bundle}: lora.json is not a JSON object (${(error as Error).message})`);
  }
  const str = (k: string) => (typeof lora[k] === "string" ? (lora[k] as string) : undefined);
  const exported = o.fromExport === undefined ? null : readExportBundle(o.fromExport);
  if (exported !== null && o.parent !== undefined && o.parent !== exported.baseModel) {
    throw new ImportError(
      `Cannot import: --parent ${JSON.stringify(o.parent)} differs from the export's base_model.ref ${
        JSON.stringify(exported.baseModel)
      } ` +
        `(${o.fromExport}); the adapter was trained on the export's base: leave --parent out`,
    );
  }
  if (exported !== null && o.jobId !== undefined && o.jobId !== exported.jobId) {
    throw new ImportError(
      `Cannot import: --job-id ${JSON.stringify(o.jobId)} differs from the export's job ${
        JSON.stringify(exported.jobId)
      } (${o.fromExport}); leave --job-id out`,
    );
  }
  const parent = o.parent ?? exported?.baseModel ?? str("base_model") ?? str("parent");
  if (parent === undefined) {
    throw new ImportError("Cannot import: no parent model (give --parent or --from-export, or base_model in lora.json)");
  }
  const parentManifest = readParent(o.registry, parent);
  const target = join(o.registry, "available", o.id);
  if (existsSync(target)) throw new ImportError(`Cannot import: ${target} already exists; pick another --id`);

  const artefacts = [...REQUIRED, ...OPTIONAL.filter((f) => existsSync(join(o.bundle, f)))];
  const window = exported?.window ?? (lora.telemetry_window as { start_ms?: unknown; end_ms?: unknown } | undefined);
  const lines = [
    "[model]",
    `id = ${toml(o.id)}`,
    `base = ${toml(parent)}`,
    `format = "safetensors+lora"`,
    "",
    "[training]",
    `job_id = ${toml(o.jobId ?? exported?.jobId ?? str("job_id") ?? "unknown")}`,
    ...(typeof window?.start_ms === "number" && typeof window?.end_ms === "number"
      ? [`telemetry_window_start_ms = ${window.start_ms}`, `telemetry_window_end_ms = ${window.end_ms}`]
      : []),
    "",
    ...provenanceTable(manifestSha256(parentManifest), exported),
  ];
  for (const f of artefacts) {
    const bytes = readFileSync(join(o.bundle, f));
    lines.push("", `[artifacts.${toml(f)}]`, `sha256 = ${toml(sha256Hex(bytes))}`, `bytes = ${statSync(join(o.bundle, f)).size}`);
  }
  lines.push("", approvalTable({ status: o.approval ?? DEFAULTS.approval }));
  const manifest = lines.join("\n");
  const size = byteLength(manifest);
  if (size > LIMITS.manifestBytes) {
    throw new ImportError(`Cannot import: the manifest would be ${size} bytes and the VM accepts at most ${LIMITS.manifestBytes}`);
  }
  // Staged in a hidden folder (the registry skips those), then renamed: the model appears whole.
  const staging = join(o.registry, "available", `.${o.id}.import-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    for (const f of artefacts) copyFileSync(join(o.bundle, f), join(staging, f));
    replaceFileDurably(join(staging, "manifest.toml"), manifest, 0o644);
    renameSync(staging, target);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
  return manifest;
}

/** `[provenance]`: the parent's manifest hash and, from an export, its job and its files' hashes. */
function provenanceTable(parentSha256: string, exported: ExportBundle | null): string[] {
  return [
    "[provenance]",
    `parent_sha256 = ${toml(parentSha256)}`,
    ...(exported === null ? [] : [
      `export_job_id = ${toml(exported.jobId)}`,
      `export_policy_sha256 = ${toml(exported.policySha256)}`,
      `export_telemetry_sha256 = ${toml(exported.telemetrySha256)}`,
    ]),
  ];
}

/**
 * The parent's manifest. Checked against the registry's own models, never the built-in catalog a
 * bridge falls back to: the first import into an empty registry is held to the same rule as
 * every later one.
 */
function readParent(registry: string, parent: string): string {
  let known: string[];
  try {
    known = registryModelIds(registry);
  } catch (error) {
    throw new ImportError(`Cannot import: ${(error as Error).message}`, { cause: error });
  }
  if (!known.includes(parent)) {
    const holds = known.length === 0 ? "holds no model yet" : `holds ${known.map((id) => JSON.stringify(id)).join(", ")}`;
    throw new ImportError(
      `Cannot import: parent model ${JSON.stringify(parent)} is not in the registry ${registry} (its available/ ${holds}); ` +
        `add the parent first (${join(registry, "available", parent, "manifest.toml")}), or name one of the registry's models ` +
        "with --parent, --from-export or base_model in lora.json",
    );
  }
  return readFileSync(join(registry, "available", parent, "manifest.toml"), "utf8");
}
