/**
 * Critical GPU events from NVML for the device plugin's health: one event set with every GPU
 * registered for critical XIDs and ECC errors, drained on the clock. The wait is called with a
 * zero timeout (it would block the one JavaScript thread otherwise), every `pollMs`, which keeps
 * a critical event within two seconds of marking its GPU Unhealthy.
 */
import { type Nvml, NVML_EVENT, type NvmlEvent } from "../../ffi/nvml.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";

/** What makes a GPU Unhealthy, or null: an XID outside `ignored`, a double-bit (uncorrected) ECC error. */
export function critical(e: Pick<NvmlEvent, "type" | "data">, ignored: ReadonlySet<number>): string | null {
  if (e.type === NVML_EVENT.XID_CRITICAL) return ignored.has(Number(e.data)) ? null : `XID ${e.data}`;
  if (e.type === NVML_EVENT.DOUBLE_BIT_ECC) return "double-bit ECC error";
  return null; // single-bit errors were corrected
}

/** The NVML calls this needs (ffi/nvml.ts's façade). */
export type NvmlEvents = Pick<
  Nvml,
  "deviceCount" | "handle" | "uuid" | "supportedEvents" | "eventSetCreate" | "registerEvents" | "eventWait" | "eventSetFree" | "close"
>;

export interface NvmlHealthOptions {
  readonly nvml: NvmlEvents;
  readonly clock: Clock;
  readonly log: Logger;
  readonly ignoredXids: readonly number[];
  /** Told of a critical event: the GPU's UUID (null: NVML did not say which, so every GPU), and what. */
  readonly onCritical: (uuid: string | null, what: string) => void;
  /** How often the set is drained (default 500 ms). */
  readonly pollMs?: number;
}

/** The most events read in one round, so a storm cannot hold the thread. */
const MAX_PER_ROUND = 256;

export class NvmlHealthEvents {
  readonly #o: NvmlHealthOptions;
  readonly #ignored: ReadonlySet<number>;
  readonly #uuidOf = new Map<bigint, string>();
  #set: bigint | null = null;
  #timer: unknown = null;
  #stopped = false;

  constructor(o: NvmlHealthOptions) {
    this.#o = o;
    this.#ignored = new Set(o.ignoredXids);
  }

  /** Registers every GPU that reports health events; returns how many did. */
  start(): number {
    const nvml = this.#o.nvml;
    const wanted = NVML_EVENT.XID_CRITICAL | NVML_EVENT.DOUBLE_BIT_ECC | NVML_EVENT.SINGLE_BIT_ECC;
    this.#set = nvml.eventSetCreate();
    for (let i = 0; i < nvml.deviceCount(); i++) {
      try {
        const h = nvml.handle(i);
        const types = nvml.supportedEvents(h) & wanted;
        if (types === 0n) continue;
        nvml.registerEvents(h, types, this.#set);
        this.#uuidOf.set(h, nvml.uuid(h));
      } catch (error) {
        this.#o.log.warn(`NVML health events: GPU ${i} not watched: ${errorText(error)}`);
      }
    }
    this.#schedule();
    return this.#uuidOf.size;
  }

  stop(): void {
    this.#stopped = true;
    this.#o.clock.clearTimer(this.#timer);
    if (this.#set !== null) this.#o.nvml.eventSetFree(this.#set);
    this.#set = null;
    this.#o.nvml.close();
  }

  /** Reads what the set holds now and reports the critical events. */
  drain(): void {
    if (this.#set === null) return;
    for (let n = 0; n < MAX_PER_ROUND; n++) {
      let e: NvmlEvent | null;
      try {
        e = this.#o.nvml.eventWait(this.#set, 0);
      } catch (error) {
        this.#o.log.warn(`NVML health events: ${errorText(error)}`);
        return;
      }
      if (e === null) return;
      const what = critical(e, this.#ignored);
      const uuid = this.#uuidOf.get(e.device) ?? null;
      if (what === null) this.#o.log.debug(`NVML event ${e.type} (${e.data}) on ${uuid ?? "a GPU"}: not critical`);
      else this.#o.onCritical(uuid, what);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(this.#o.pollMs ?? 500, () => {
      this.drain();
      this.#schedule();
    });
  }
}
