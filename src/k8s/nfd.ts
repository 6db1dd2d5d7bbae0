/**
 * Labels for the scheduler: a Node Feature Discovery "local" feature file (`--nfd-file`), one
 * `name=value` line per label, which NFD's worker turns into node labels. Names sit under the
 * advertised resource (`cohesix.io/gpu.product`, ...), so a pod can select nodes by GPU model,
 * memory, compute capability, driver, MIG or sharing. The file is replaced atomically (NFD skips
 * the hidden temporary file) and only when a label changed; it is removed when the bridge stops,
 * since the labels promise a plugin that serves them.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { GpuInfo } from "../contract/info.ts";
import type { GpuStats } from "../inventory/stats.ts";
import { DiskWriteError, replaceFileDurably } from "../util/files.ts";
import type { Logger } from "../util/log.ts";

export interface NfdInput {
  /** The resource name, whose `domain/name` prefixes every label. */
  readonly resource: string;
  readonly gpus: readonly GpuInfo[];
  readonly stats: readonly GpuStats[];
  readonly share: number;
}

/** A label value as Kubernetes takes it: up to 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends. */
export function labelValue(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

/** The feature file's text for the GPUs now; empty when there are none. */
export function nfdFeatures(i: NfdInput): string {
  const first = i.gpus[0];
  if (first === undefined) return "";
  const p = `${i.resource}.`;
  const stats = i.stats.find((s) => s.id === first.id);
  const cc = stats?.compute_capability?.split(".");
  const driver = first.driver_version.split(".");
  const mig = i.stats.some((s) => s.mig_mode === "enabled");
  const lines: [string, string | number | boolean][] = [
    ["present", true],
    ["count", i.gpus.length],
    ["product", labelValue(first.name)],
    ["memory", first.memory_mb],
    ...(i.gpus.some((g) => g.name !== first.name) ? [["product.mixed", true] as [string, boolean]] : []),
    ...(cc !== undefined && cc.length === 2 ? [["compute.major", cc[0]!], ["compute.minor", cc[1]!]] as [string, string][] : []),
    ["driver.version", labelValue(first.driver_version)],
    ["driver.major", labelValue(driver[0] ?? "")],
    ["cuda.runtime.version", labelValue(first.runtime_version)],
    ["mig.capable", i.stats.some((s) => s.mig_mode !== null)],
    ["mig.enabled", mig],
    ["sharing.replicas", i.share],
  ];
  return lines.filter(([, v]) => v !== "").map(([k, v]) => `${p}${k}=${v}\n`).join("");
}

/** Keeps the feature file current; `update` rewrites it only when its text changes. */
export class NfdFile {
  readonly path: string;
  readonly #log: Logger;
  #text: string | null = null;
  #failed = false;

  constructor(path: string, log: Logger) {
    this.path = path;
    this.#log = log;
  }

  update(input: NfdInput): void {
    const text = nfdFeatures(input);
    if (text === this.#text) return;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      replaceFileDurably(this.path, text, 0o644);
    } catch (error) {
      // The labels lag until the next try; nothing else depends on them.
      if (!this.#failed) {
        this.#log.warn(error instanceof DiskWriteError ? error.message : `Cannot write ${this.path}: ${(error as Error).message}`);
      }
      this.#failed = true;
      return;
    }
    this.#failed = false;
    this.#log.info(`NFD labels written to ${this.path} (${text.split("\n").length - 1} labels)`);
    this.#text = text;
  }

  /** Removes the file if it still holds what this writer wrote. */
  remove(): void {
    if (this.#text === null) return;
    try {
      if (readFileSync(this.path, "utf8") === this.#text) rmSync(this.path, { force: true });
    } catch {
      // already gone
    }
    this.#text = null;
  }
}
