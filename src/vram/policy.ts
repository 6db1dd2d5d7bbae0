/**
 * The VRAM-only policy, checked beyond the moment of allocation: what the driver says about an
 * allocation (a pure rule, shared with the seal's own check), and the timer that re-asks it for
 * every sealed shard at start-up and every `--vram-policy-check-ms`. The memory type of a
 * cuMemAlloc_v2 or cuMemCreate allocation does not change by itself; what the re-check catches
 * is a driver, a shim preloaded into the bridge, or a context reset that no longer gives (or no
 * longer knows) device memory where a shard was sealed, which a verification of the bytes alone
 * cannot see: the bytes may be intact in the wrong place.
 */
import type { PointerEvidence } from "../../ffi/cuda-vram.ts";
import type { Clock } from "../util/clock.ts";
import { errorText } from "../util/error-text.ts";
import type { Logger } from "../util/log.ts";
import { Repeat } from "../util/repeat.ts";
import type { VramBackend } from "./backend.ts";

/** Why `ev` breaks the VRAM-only policy for an allocation made on `ordinal`; null when it keeps it. */
export function pointerViolation(ev: PointerEvidence, ordinal: number): string | null {
  return ev.memory_type !== "device"
    ? `memory type is ${ev.memory_type}, not device`
    : ev.is_managed
    ? "the allocation is managed (unified) memory"
    : ev.host_pointer_query === 0
    ? "the allocation has a host pointer"
    : ev.device_ordinal !== ordinal
    ? `the allocation is on device ${ev.device_ordinal}, not ${ordinal}`
    : null;
}

/** The pointer evidence as attestations show it (no address). */
export function pointerView(ev: PointerEvidence): Record<string, unknown> {
  return {
    memory_type: ev.memory_type,
    is_managed: ev.is_managed,
    host_pointer_query: ev.host_pointer_query === 1
      ? "CUDA_ERROR_INVALID_VALUE"
      : ev.host_pointer_query === 0
      ? "a host pointer exists"
      : `CUresult ${ev.host_pointer_query}`,
    device_ordinal: ev.device_ordinal,
  };
}

/**
 * The start-up probe of one GPU: one allocation made as a shard's would be, its pointer checked,
 * then freed. Null when the policy holds or cannot apply there (host memory, an integrated GPU);
 * else why not. A driver that refuses the allocation is no violation (nothing was placed): that
 * is left to the first seal, which reports it.
 */
export function probeDevice(backend: VramBackend, ordinal: number): string | null {
  if (backend.kind !== "cuda" || backend.deviceEvidence(ordinal).integrated) return null;
  let buf;
  try {
    buf = backend.alloc(ordinal, 1);
  } catch {
    return null;
  }
  try {
    const ev = backend.pointerEvidence(buf);
    return ev === null ? null : pointerViolation(ev, ordinal);
  } catch (error) {
    return `the driver cannot describe a new allocation: ${errorText(error)}`;
  } finally {
    try {
      backend.free(buf);
    } catch {
      // a probe that cannot be freed leaks one granule; the seal's own frees report such a driver
    }
  }
}

/** What the timer runs: the check over every sealed shard (ShardStore.checkPolicy). */
export interface PolicyTarget {
  checkPolicy(check: "startup" | "periodic"): unknown;
}

/** Re-checks the policy every `intervalMs` on `clock`; one check at a time. */
export class PolicyTimer {
  readonly #repeat: Repeat;

  constructor(target: PolicyTarget, clock: Clock, intervalMs: number, log: Logger) {
    this.#repeat = new Repeat(clock, intervalMs, "VRAM policy check", () => {
      try {
        target.checkPolicy("periodic");
      } catch (error) {
        // A check that could not run must not pass unnoticed, nor stop the next one.
        log.error(`The VRAM-only policy check could not run: ${errorText(error)}`);
      }
    });
  }

  start(): void {
    this.#repeat.start();
  }

  stop(): void {
    this.#repeat.stop();
  }
}
