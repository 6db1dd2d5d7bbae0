/**
 * Keeps the model catalog current: file-system events on the registry for speed, and a poll
 * as the fallback (events are lost on some file systems, and the directory may not exist yet).
 * A reload that changes nothing is silent; one that changes the catalog calls `onChange`.
 *
 * With a `gate`, the active pointer moves only to a model the gate admits: an `active` file
 * edited by hand to name another model is refused (logged, `onRefused`), and the file is written
 * back to the model that stays active. The bridge's own switches (`switchTo`) were checked by
 * their caller and pass.
 */
import { type FSWatcher, watch } from "node:fs";
import { DEFAULTS } from "../config/defaults.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import { errorText } from "../util/error-text.ts";
import { loadRegistry } from "./registry.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { builtinCatalog } from "./catalog.ts";
import { writeActive } from "./active.ts";

/** What the switch that moved the pointer says of it (merged into the activation's record). */
export type ActivationNote = Readonly<Record<string, unknown>>;

/** A hand-made move of the pointer that the gate refused. */
export interface Refusal {
  readonly model_id: string;
  /** The model that stays (or becomes) active instead. */
  readonly kept: string;
  readonly reason: string;
}

export interface RegistryWatchOptions {
  readonly dir: string;
  readonly log: Logger;
  /** `note`: what `switchTo` was given, when it moved the pointer. */
  readonly onChange: (catalog: ModelCatalog, note?: ActivationNote) => void;
  /** Whether `modelId` may become active (null) or why not; absent: any model may. */
  readonly gate?: (catalog: ModelCatalog, modelId: string) => Error | null;
  /** Told of each refused hand edit, after the file was written back. */
  readonly onRefused?: (refusal: Refusal) => void;
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
  #switching: { readonly modelId: string; readonly note: ActivationNote } | null = null;

  constructor(options: RegistryWatchOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    const { catalog, warnings } = loadRegistry(options.dir);
    this.#logWarnings(warnings);
    this.#catalog = this.#gated(catalog, null);
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
    const switching = this.#switching?.modelId === catalog.active ? this.#switching : null;
    const adopted = switching !== null ? catalog : this.#gated(catalog, this.#catalog);
    const key = JSON.stringify(adopted);
    if (key === this.#key) return false;
    this.#catalog = adopted;
    this.#key = key;
    this.#o.log.info(`registry changed: ${adopted.models.length} models, active ${adopted.active} (${adopted.source})`);
    this.#o.onChange(adopted, switching?.note);
    return true;
  }

  /**
   * Makes `modelId` active past the gate (its caller checked it): rewrites `active` and reloads;
   * `note` reaches `onChange` with the new catalog. Returns whether the catalog changed.
   */
  switchTo(modelId: string, note: ActivationNote = {}): boolean {
    this.#switching = { modelId, note };
    try {
      writeActive(this.#o.dir, modelId);
      return this.reload();
    } finally {
      this.#switching = null;
    }
  }

  /**
   * `next` with its active model admitted by the gate; else, refused, the active model before
   * (`prev`) where `next` still holds it, or the first model the gate admits; the `active` file
   * is written back to match. A pointer that did not move is not judged again.
   */
  #gated(next: ModelCatalog, prev: ModelCatalog | null): ModelCatalog {
    const gate = this.#o.gate;
    if (gate === undefined || next.source !== "registry" || next.active === prev?.active) return next;
    const refusal = gate(next, next.active);
    if (refusal === null) return next;
    // What was live stays live (even a model forced through the API); at start, or when it is
    // gone, the first model the gate admits.
    const stays = prev !== null && prev.source === "registry" && next.models.some((m) => m.model_id === prev.active)
      ? prev.active
      : next.models.find((m) => m.model_id !== next.active && gate(next, m.model_id) === null)?.model_id;
    const path = `${this.#o.dir}/active`;
    if (stays === undefined) {
      this.#o.log.error(
        `Refused ${JSON.stringify(next.active)} named by ${path}: ${refusal.message}; no model of the registry may be active, ` +
          "so the built-in catalog is served",
      );
      return builtinCatalog();
    }
    this.#o.log.warn(`Refused ${JSON.stringify(next.active)} named by ${path}: ${refusal.message}; ${stays} stays active`);
    try {
      writeActive(this.#o.dir, stays);
    } catch (error) {
      this.#o.log.error(`Cannot write ${stays} back to ${path}: ${errorText(error)}`);
    }
    this.#o.onRefused?.({ model_id: next.active, kept: stays, reason: refusal.message });
    return { ...next, active: stays };
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
