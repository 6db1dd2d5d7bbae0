/**
 * The host model registry (docs/protocol.md#5-model-registry): `DIR/available/<id>/manifest.toml` and
 * `DIR/active`. Any failure falls back to the built-in catalog, as the reference does, but
 * with a warning that says what was wrong. Symlinked entries are skipped so a registry
 * writer cannot make the bridge publish files it was never meant to read.
 */
import { type Dirent, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { builtinCatalog } from "./catalog.ts";
import type { ModelCatalog, ModelEntry } from "../contract/models.ts";
import { LIMITS, modelIdProblem } from "../contract/limits.ts";
import { byteLength } from "../util/bytes.ts";
import { readCapped } from "../util/files.ts";

/** The catalog that was loaded, and every warning met on the way. */
export interface RegistryLoad {
  readonly catalog: ModelCatalog;
  readonly warnings: string[];
  /**
   * False when the registry could not be used whole (a fallback to the built-in catalog, or an
   * `active` that names no model here or cannot be read): what a registry caught half-written
   * looks like, so a watcher keeps its last good catalog a while before adopting this one.
   */
  readonly complete: boolean;
}

/** Raised for a registry that cannot be used; the loader turns it into a fallback. */
export class RegistryError extends Error {
  override name = "RegistryError";
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const ACTIVE_FILE_CAP = 64 * 1024;

/** Loads the registry at `dir`, or the built-in catalog when `dir` is undefined or unusable. */
export function loadRegistry(dir: string | undefined): RegistryLoad {
  if (dir === undefined) return { catalog: builtinCatalog(), warnings: [], complete: true };
  const warnings: string[] = [];
  try {
    const models = readModels(dir, warnings);
    if (models.length === 0) {
      throw new RegistryError(`Cannot use registry ${dir}: ${join(dir, "available")} holds no usable model`);
    }
    const before = warnings.length;
    const active = readActive(dir, models, warnings);
    return { catalog: { source: "registry", active, models }, warnings, complete: warnings.length === before };
  } catch (error) {
    const why = error instanceof RegistryError ? error.message : `Cannot read registry ${dir}: ${describe(error)}`;
    warnings.push(`${why}; using the built-in catalog`);
    return { catalog: builtinCatalog(), warnings, complete: false };
  }
}

/**
 * The ids of the models in `dir`'s own `available/` folder, never the built-in catalog's: what
 * `models import` checks a parent against. A registry with no `available/` folder yet is empty.
 */
export function registryModelIds(dir: string): string[] {
  try {
    return readModels(dir, []).map((m) => m.model_id);
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code === "ENOENT") return [];
    throw error;
  }
}

function readModels(dir: string, warnings: string[]): ModelEntry[] {
  const available = join(dir, "available");
  let entries: Dirent[];
  try {
    // File types come with the listing (d_type): no lstat per entry, which is most of the cost
    // of polling a registry of thousands of models.
    entries = readdirSync(available, { withFileTypes: true });
  } catch (error) {
    throw new RegistryError(`Cannot use registry ${dir}: cannot list ${available}: ${describe(error)}`, { cause: error });
  }
  const models: ModelEntry[] = [];
  for (const dirent of entries) {
    const name = dirent.name;
    const entry = join(available, name);
    // A file system without d_type reports neither: ask lstat then.
    const known = dirent.isDirectory() || dirent.isSymbolicLink() || dirent.isFile();
    const stat = known ? dirent : lstatSync(entry);
    if (stat.isSymbolicLink()) {
      warnings.push(`Skipping model ${JSON.stringify(name)}: ${entry} is a symlink`);
      continue;
    }
    // Hidden folders are skipped too: `models import` stages bundles in one before renaming.
    if (!stat.isDirectory() || name.trim() === "" || name.startsWith(".")) continue;
    const problem = modelIdProblem(name);
    if (problem !== null) {
      warnings.push(`Skipping model ${JSON.stringify(name)}: the VM refuses this id (${problem})`);
      continue;
    }
    // The open refuses a symlink (ELOOP) or anything but a regular file, with no lstat first.
    const manifestPath = join(entry, "manifest.toml");
    let manifest: string;
    try {
      manifest = readManifest(manifestPath);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTREG") continue; // no manifest: skipped, as the reference does
      if (code === "ELOOP") {
        warnings.push(`Skipping model ${JSON.stringify(name)}: ${manifestPath} is a symlink`);
        continue;
      }
      throw error;
    }
    models.push({ model_id: name, manifest_toml: manifest });
  }
  models.sort((a, b) => compareBytes(a.model_id, b.model_id));
  return models;
}

function readManifest(path: string): string {
  const bytes = readCapped(path, LIMITS.manifestBytes);
  if (bytes === null) {
    throw new RegistryError(`Cannot use manifest ${path}: it is larger than ${LIMITS.manifestBytes} bytes`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new RegistryError(`Cannot use manifest ${path}: it is not valid UTF-8`);
  }
}

function readActive(dir: string, models: ModelEntry[], warnings: string[]): string {
  const first = models[0]!.model_id;
  const path = join(dir, "active");
  // The same checks as the manifests: a symlinked `active` could point at any file the bridge
  // can read (an API token), and its first line would end up in a warning.
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return first; // no active file: the first model
  }
  if (st.isSymbolicLink() || !st.isFile()) {
    warnings.push(`Ignoring ${path}: it is ${st.isSymbolicLink() ? "a symlink" : "not a regular file"}; ${first} is active`);
    return first;
  }
  let bytes: Uint8Array | null;
  try {
    bytes = readCapped(path, ACTIVE_FILE_CAP);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") {
      warnings.push(`Cannot read ${path}: ${describe(error)}; ${first} is active`);
    }
    return first;
  }
  const line = bytes === null ? undefined : firstNonBlankLine(new TextDecoder().decode(bytes));
  if (line === undefined) {
    if (bytes === null) warnings.push(`Ignoring ${path}: it is over ${ACTIVE_FILE_CAP} bytes; ${first} is active`);
    return first;
  }
  if (byteLength(line) > LIMITS.modelIdBytes) {
    warnings.push(`Ignoring ${path}: its model id is over ${LIMITS.modelIdBytes} bytes; ${first} is active`);
    return first;
  }
  if (!models.some((m) => m.model_id === line)) {
    warnings.push(`Ignoring ${path}: it names ${JSON.stringify(line)}, which is not in the registry; ${first} is active`);
    return first;
  }
  return line;
}

function firstNonBlankLine(text: string): string | undefined {
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed !== "") return trimmed;
  }
  return undefined;
}

const utf8Encoder = new TextEncoder();

/** Byte-wise UTF-8 order, as the reference sorts (it differs from UTF-16 order for astral characters). */
export function compareBytes(a: string, b: string): number {
  // UTF-16 units below the surrogates order as their UTF-8 bytes do: compare them directly,
  // and encode only from the first unit that is not.
  const n0 = Math.min(a.length, b.length);
  for (let i = 0; i < n0; i++) {
    const p = a.charCodeAt(i);
    const q = b.charCodeAt(i);
    if (p >= 0xd800 || q >= 0xd800) return compareEncoded(a.slice(i), b.slice(i));
    if (p !== q) return p - q;
  }
  return a.length - b.length;
}

function compareEncoded(a: string, b: string): number {
  const x = utf8Encoder.encode(a);
  const y = utf8Encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
