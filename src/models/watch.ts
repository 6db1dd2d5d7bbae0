/**
 * Keeps the model catalog current: file-system events on the registry for speed, and a poll
 * as the fallback (events are lost on some file systems, and the directory may not exist yet).
 * A reload that changes nothing is silent; one that changes the catalog calls `onChange`.
 */
import { watch, type FSWatcher } from "node:fs";
import type { Logger } from "../util/log.ts";
import { loadRegistry } from "./registry.ts";
import type { ModelCatalog } from "../contract/models.ts";

export interface RegistryWatchOptions {
  readonly dir: string;
  readonly log: Logger;
  readonly onChange: (catalog: ModelCatalog) => void;
  /** Poll period in ms (default 1000). */
  readonly pollMs?: number;
}

/** A watched registry: `catalog` is always the latest good load. */
export class RegistryWatch {
  #catalog: ModelCatalog;
  #key: string;
  #warnings = "";
  readonly #o: RegistryWatchOptions;
  #watcher: FSWatcher | null = null;
  #poll: ReturnType<typeof setInterval> | undefined;

  constructor(options: RegistryWatchOptions) {
    this.#o = options;
    const { catalog, warnings } = loadRegistry(options.dir);
    this.#logWarnings(warnings);
    this.#catalog = catalog;
    this.#key = JSON.stringify(catalog);
    this.#poll = setInterval(() => this.reload(), options.pollMs ?? 1000);
    this.#arm();
  }

  get catalog(): ModelCatalog {
    return this.#catalog;
  }

  /** Re-reads the registry now; returns whether the catalog changed. */
  reload(): boolean {
    const { catalog, warnings } = loadRegistry(this.#o.dir);
    this.#logWarnings(warnings);
    if (this.#watcher === null) this.#arm();
    const key = JSON.stringify(catalog);
    if (key === this.#key) return false;
    this.#catalog = catalog;
    this.#key = key;
    this.#o.log.info(`registry changed: ${catalog.models.length} models, active ${catalog.active} (${catalog.source})`);
    this.#o.onChange(catalog);
    return true;
  }

  close(): void {
    clearInterval(this.#poll);
    this.#watcher?.close();
    this.#watcher = null;
  }

  #arm(): void {
    try {
      this.#watcher = watch(this.#o.dir, { recursive: true }, () => this.reload());
      this.#watcher.on("error", () => {
        this.#watcher?.close();
        this.#watcher = null; // the poll re-arms it
      });
    } catch {
      this.#watcher = null; // missing directory or no inotify: the poll covers it
    }
  }

  #logWarnings(warnings: string[]): void {
    const text = warnings.join("\n");
    if (text !== this.#warnings) for (const w of warnings) this.#o.log.warn(w);
    this.#warnings = text;
  }
}
