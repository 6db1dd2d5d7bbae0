/**
 * Keeps the model catalog current: file-system events on the registry for speed, and a poll
 * as the fallback (events are lost on some file systems, and the directory may not exist yet).
 * A reload that changes nothing is silent; one that changes the catalog calls `onChange`.
 */
import { type FSWatcher, watch } from "node:fs";
import { DEFAULTS } from "../config/defaults.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { loadRegistry } from "./registry.ts";
import type { ModelCatalog } from "../contract/models.ts";

export interface RegistryWatchOptions {
  readonly dir: string;
  readonly log: Logger;
  readonly onChange: (catalog: ModelCatalog) => void;
  /** Poll period in ms (default DEFAULTS.registryPollMs). */
  readonly pollMs?: number;
  /**
   * How long a registry that looks half-written (unusable, or `active` naming a model not yet
   * there) may go on looking so before it replaces the last good catalog (default DEFAULTS.registrySettleMs).
   */
  readonly settleMs?: number;
  /** File-system events within this many ms are one reload (default DEFAULTS.registryDebounceMs). */
  readonly debounceMs?: number;
  /** Time and the poll's and debounce's timers (default: the system clock). */
  readonly clock?: Clock;
}

/** A watched registry: `catalog` is always the latest good load. */
export class RegistryWatch {
  #catalog: ModelCatalog;
  #key: string;
  #warnings = "";
  readonly #o: RegistryWatchOptions;
  readonly #clock: Clock;
  #watcher: FSWatcher | null = null;
  #poll: unknown;
  #lastLoadMs = 0;
  #closed = false;
  #incompleteSince: number | null = null;
  #pending: unknown;

  constructor(options: RegistryWatchOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    const { catalog, warnings } = loadRegistry(options.dir);
    this.#logWarnings(warnings);
    this.#catalog = catalog;
    this.#key = JSON.stringify(catalog);
    this.#schedule();
    this.#arm();
  }

  get catalog(): ModelCatalog {
    return this.#catalog;
  }

  /** Re-reads the registry now; returns whether the catalog changed. */
  reload(): boolean {
    const t0 = this.#clock.now();
    const { catalog, warnings, complete } = loadRegistry(this.#o.dir);
    this.#lastLoadMs = this.#clock.now() - t0;
    if (this.#watcher === null) this.#arm();
    // A writer mid-change (a folder renamed away, `active` written before its model) must not
    // flap the VM's catalog to the built-in one and back: the last good catalog stays until
    // the registry has looked this way for `settleMs`.
    if (complete || this.#catalog.source !== "registry") this.#incompleteSince = null;
    else {
      const now = this.#clock.now();
      if (this.#incompleteSince === null) {
        this.#incompleteSince = now;
        this.#o.log.info(`registry looks half-written (${warnings.at(-1) ?? "incomplete"}); keeping the last good catalog for now`);
      }
      if (now - this.#incompleteSince < (this.#o.settleMs ?? DEFAULTS.registrySettleMs)) return false;
    }
    this.#logWarnings(warnings);
    const key = JSON.stringify(catalog);
    if (key === this.#key) return false;
    this.#catalog = catalog;
    this.#key = key;
    this.#o.log.info(`registry changed: ${catalog.models.length} models, active ${catalog.active} (${catalog.source})`);
    this.#o.onChange(catalog);
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#clock.clearTimer(this.#poll);
    this.#clock.clearTimer(this.#pending);
    this.#pending = undefined;
    this.#watcher?.close();
    this.#watcher = null;
  }

  /** The fallback poll, spaced so that reading a large registry costs at most ~2% of a core. */
  #schedule(): void {
    if (this.#closed) return;
    this.#poll = this.#clock.setTimer(nextPollMs(this.#o.pollMs ?? DEFAULTS.registryPollMs, this.#lastLoadMs), () => {
      this.reload();
      this.#schedule();
    });
  }

  #arm(): void {
    try {
      this.#watcher = watch(this.#o.dir, { recursive: true }, () => {
        // At most one reload per `debounceMs`, however fast the events come.
        this.#pending ??= this.#clock.setTimer(this.#o.debounceMs ?? DEFAULTS.registryDebounceMs, () => {
          this.#pending = undefined;
          this.reload();
        });
      });
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
    if (text !== this.#warnings) { for (const w of warnings) this.#o.log.warn(w); }
    this.#warnings = text;
  }
}

/** The wait before the next poll: `pollMs`, or 50 times what the last load took (at most DEFAULTS.registryPollMaxMs). */
export function nextPollMs(pollMs: number, lastLoadMs: number): number {
  return Math.max(pollMs, Math.min(DEFAULTS.registryPollMaxMs, Math.ceil(lastLoadMs * 50)));
}
