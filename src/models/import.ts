/**
 * `models import DIR --id ID`: stages a trained adapter bundle (`adapter.safetensors`,
 * `lora.json`, optional metrics) into `<registry>/available/<id>/` with a `manifest.toml` that
 * records the parent model, the training job, the telemetry window, the approval status and
 * each artefact's SHA-256 and size. Everything the VM would refuse is refused up front, and the
 * model appears whole or not at all (staged in a hidden folder, then renamed).
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

export interface ImportOptions {
  readonly bundle: string;
  readonly id: string;
  readonly registry: string;
  readonly parent?: string;
  readonly jobId?: string;
  readonly approval?: "pending" | "approved" | "rejected";
}

const REQUIRED = ["adapter.safetensors", "lora.json"];
const OPTIONAL = ["metrics.json", "metrics.csv", "metrics.txt"];

/** A bundle or id the bridge refuses. */
export class ImportError extends Error {
  override name = "ImportError";
}

const TOML_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
};

/**
 * `s` as a TOML basic string: quote and backslash escaped, and every control character that
 * TOML forbids in a string (U+0000-U+001F but tab, and U+007F) written as an escape.
 */
// deno-lint-ignore no-control-regex
const TOML_UNSAFE = /["\\\u0000-\u001f\u007f]/g;
const toml = (s: string) => `"${s.replace(TOML_UNSAFE, (c) => TOML_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;

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
  const parent = o.parent ?? str("base_model") ?? str("parent");
  if (parent === undefined) throw new ImportError("Cannot import: no parent model (give --parent, or base_model in lora.json)");
  // Checked against the registry's own models, never the built-in catalog a bridge falls back
  // to: the first import into an empty registry is held to the same rule as every later one.
  let known: string[];
  try {
    known = registryModelIds(o.registry);
  } catch (error) {
    throw new ImportError(`Cannot import: ${(error as Error).message}`, { cause: error });
  }
  if (!known.includes(parent)) {
    const holds = known.length === 0 ? "holds no model yet" : `holds ${known.map((id) => JSON.stringify(id)).join(", ")}`;
    throw new ImportError(
      `Cannot import: parent model ${JSON.stringify(parent)} is not in the registry ${o.registry} (its available/ ${holds}); ` +
        `add the parent first (${join(o.registry, "available", parent, "manifest.toml")}), or name one of the registry's models ` +
        "with --parent or base_model in lora.json",
    );
  }
  const target = join(o.registry, "available", o.id);
  if (existsSync(target)) throw new ImportError(`Cannot import: ${target} already exists; pick another --id`);

  const artefacts = [...REQUIRED, ...OPTIONAL.filter((f) => existsSync(join(o.bundle, f)))];
  const window = lora.telemetry_window as { start_ms?: unknown; end_ms?: unknown } | undefined;
  const lines = [
    "[model]",
    `id = ${toml(o.id)}`,
    `base = ${toml(parent)}`,
    `format = "safetensors+lora"`,
    "",
    "[training]",
    `job_id = ${toml(o.jobId ?? str("job_id") ?? "unknown")}`,
    ...(typeof window?.start_ms === "number" && typeof window?.end_ms === "number"
      ? [`telemetry_window_start_ms = ${window.start_ms}`, `telemetry_window_end_ms = ${window.end_ms}`]
      : []),
    "",
    "[approval]",
    `status = ${toml(o.approval ?? DEFAULTS.approval)}`,
  ];
  for (const f of artefacts) {
    const bytes = readFileSync(join(o.bundle, f));
    lines.push("", `[artifacts.${toml(f)}]`, `sha256 = ${toml(sha256Hex(bytes))}`, `bytes = ${statSync(join(o.bundle, f)).size}`);
  }
  const manifest = lines.join("\n") + "\n";
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
