/** Leases: the host's grant of GPU memory, streams and priority to one worker for a TTL. */

export interface Lease {
  readonly id: string;
  readonly gpu_id: string;
  /** The MIG device (`MIG-<uuid>`) of `gpu_id` the lease holds alone, when it asked for one. */
  readonly mig_uuid?: string;
  readonly worker_id: string;
  /** The principal of the tokens file that took it through the API (kept across restarts). */
  readonly principal?: string;
  readonly mem_mb: number;
  readonly streams: number;
  readonly ttl_s: number;
  priority: number;
  state: "ACTIVE" | "RELEASED";
  readonly granted_at: number;
  expires_at: number;
  released_reason?: string;
}

/** What a caller asks for. */
export interface LeaseRequest {
  readonly gpu_id: string;
  readonly worker_id: string;
  readonly mem_mb: number;
  readonly streams: number;
  readonly ttl_s: number;
  readonly priority: number;
  /** Who asks, with a tokens file: the principal's name, kept on the lease. */
  readonly principal?: string;
}

/** A GPU as the lease manager sees it: how much there is to lease. */
export interface LeasableGpu {
  readonly id: string;
  readonly memory_mb: number;
}

export type LeaseErrorCode = "invalid" | "not_found" | "conflict" | "insufficient" | "permission";

/** A refused lease operation; `code` maps to an HTTP status, `field` names the bad input. */
export class LeaseError extends Error {
  override name = "LeaseError";
  readonly code: LeaseErrorCode;
  readonly field: string | undefined;
  constructor(code: LeaseErrorCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

/** Something that happened to a lease. */
export type LeaseEvent =
  | { readonly type: "granted"; readonly lease: Lease }
  | { readonly type: "renewed"; readonly lease: Lease }
  /** Its terms changed (memory, streams, TTL, priority), admitted like a grant. */
  | { readonly type: "amended"; readonly lease: Lease }
  | { readonly type: "priority"; readonly lease: Lease }
  | { readonly type: "released"; readonly lease: Lease; readonly reason: string };

/** Time and timers, injected so tests and benchmarks control them (src/util/clock.ts). */
export { type Clock, systemClock } from "../util/clock.ts";

/** Worker ids travel in control lines and JSON: a safe, short charset. */
export { SAFE_ID as WORKER_ID } from "../contract/ids.ts";
/**
 * A release reason travels raw in the VM's ctl log (`RELEASE <worker> <reason>`) and in our
 * log: printable ASCII only, so it can never start a line of its own or carry escapes.
 */
export const REASON = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;
