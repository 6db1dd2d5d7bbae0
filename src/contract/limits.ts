/**
 * What the VM's `/gpu/bridge/ctl` receiver accepts (docs/protocol.md#8-the-console). The bridge checks
 * these before publishing, and the snapshot parser and mock console enforce them.
 */
import { byteLength } from "../util/bytes.ts";

export const LIMITS = Object.freeze({
  snapshotBytes: 131072,
  gpuIdBytes: 32,
  modelIdBytes: 128,
  manifestBytes: 8192,
  schemaBytes: 4096,
  leaseLogBytes: 1024,
  statusLogBytes: 32 * 1024,
  /** The VM refuses appends to a node's ctl past 1 KiB (section 12; not `/gpu/bridge/ctl`'s 128 KiB). */
  ctlLogBytes: 1024,
  /** `/gpu/bridge/ctl`'s own transfer log, restarted at every `begin`. */
  transferLogBytes: 128 * 1024,
  frameBytes: 8192,
  commandBytes: 256,
  echoPayloadBytes: 128,
  pathBytes: 96,
  /** Lines the console queues per session; past that it drops the oldest. */
  consoleQueueLines: 8,
  /**
   * The `job` file one VM variant keeps per GPU node (section 12). Its cap is not documented;
   * 32 KiB, like `status`, is our assumption.
   */
  jobLogBytes: 32 * 1024,
});

/** A lease's priority (section 7): an integer from 0 to 255, higher first. */
export const PRIORITY = Object.freeze({ min: 0, max: 255 });

/** Why `value` is not a lease priority (naming the value), or null. */
export function priorityProblem(value: unknown): string | null {
  if (typeof value === "number" && Number.isInteger(value) && value >= PRIORITY.min && value <= PRIORITY.max) return null;
  return `must be an integer from ${PRIORITY.min} to ${PRIORITY.max}, got ${JSON.stringify(value)}`;
}

/** The files of a GPU node that the VM's clients append to (section 12). `job` exists in one VM variant. */
export type VmFile = "ctl" | "lease" | "status" | "job";

/** The VM's append cap of each node file, bytes of the whole file (the same facts as LIMITS). */
export const VM_CAPS: Readonly<Record<VmFile, number>> = Object.freeze({
  ctl: LIMITS.ctlLogBytes,
  lease: LIMITS.leaseLogBytes,
  status: LIMITS.statusLogBytes,
  job: LIMITS.jobLogBytes,
});

// Whitespace, C0/C1 controls, DEL, `=`, and the invisible format characters that reorder or
// hide text (bidi overrides and isolates, zero-width joiners, BOM): an id must read as it is.
// deno-lint-ignore no-control-regex
const UNSAFE_IN_LINE = /[\s\u0000-\u001f\u007f-\u009f=\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

/**
 * Why the VM would refuse `id` as a model id, or null if it is acceptable. Besides the VM's
 * own rules (1-128 bytes, not `.`/`..`, no `/`), ids may not hold whitespace, control
 * characters or `=`, since they travel raw in `model id=<id>` snapshot lines.
 */
export function modelIdProblem(id: string): string | null {
  return idProblem(id, LIMITS.modelIdBytes);
}

/** Why the VM would refuse `id` as a GPU id, or null (1-32 bytes, a safe path component). */
export function gpuIdProblem(id: string): string | null {
  return idProblem(id, LIMITS.gpuIdBytes);
}

function idProblem(id: string, maxBytes: number): string | null {
  const n = byteLength(id);
  if (n < 1 || n > maxBytes) return `must be 1-${maxBytes} bytes, got ${n}`;
  if (id === "." || id === "..") return "must not be '.' or '..'";
  if (id.includes("/")) return "must not contain '/'";
  if (UNSAFE_IN_LINE.test(id)) return "must not contain whitespace, control or bidi/invisible formatting characters, or '='";
  return null;
}
