/**
 * API errors: one class the handlers throw, and the one mapping (used by `onError`) from every
 * domain error to an HTTP status and the body `{"error":{"code","message","field"?}}` (a shard's
 * refusal adds its numbers and `retryable`).
 */
import { JobError } from "../host/state.ts";
import { LeaseError } from "../lease/types.ts";
import { VRAM_RETRYABLE, VramError } from "../vram/errors.ts";
import { DiskWriteError } from "../util/files.ts";
import { ModelError } from "../models/errors.ts";

export class ApiError extends Error {
  override name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.headers = headers;
  }
}

/** The status of each lease refusal; exported so the OpenAPI document lists exactly these. */
export const LEASE_STATUS = { invalid: 422, not_found: 404, conflict: 409, insufficient: 409, permission: 403 } as const;
/** The status of each job refusal. */
export const JOB_STATUS = {
  invalid: 422,
  not_found: 404,
  conflict: 409,
  permission: 403,
  busy: 429,
  not_sealed: 404,
  integrity_violation: 422,
} as const satisfies Record<JobError["code"], number>;
/** The status of each shard refusal. */
export const VRAM_STATUS = {
  invalid: 422,
  not_found: 404,
  not_sealed: 404,
  conflict: 409,
  insufficient_vram: 409,
  permission: 403,
  integrity_violation: 422,
  seal_verification_failed: 500,
  policy: 409,
  unavailable: 503,
  cuda_allocation_failed: 500,
  cuda_deallocation_failed: 500,
  cuda: 500,
} as const satisfies Record<VramError["code"], number>;

/** The status of each model refusal (activation, approval). */
export const MODEL_STATUS = {
  not_found: 404,
  no_registry: 409,
  invalid: 422,
  not_approved: 409,
  verify_failed: 409,
  too_large: 422,
} as const satisfies Record<ModelError["code"], number>;

/** The statuses a write that did not land answers (see `DiskWriteError` below). */
export const STORAGE_STATUS = { insufficient_storage: 507, storage_unavailable: 503 } as const;

/** The distinct statuses of one of the tables above. */
export const statusesOf = (table: Readonly<Record<string, number>>): number[] => [...new Set(Object.values(table))];
/** What a shard route can refuse with (every route of vram.ts, vram-share.ts, vram-sets.ts). */
export const VRAM_ERRORS = statusesOf(VRAM_STATUS);

/** The status, code, message and field for any error a handler let through. */
export function describeError(
  error: unknown,
): { status: number; code: string; message: string; field?: string; headers?: Record<string, string>; details?: Record<string, unknown> } {
  if (error instanceof ApiError) {
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      ...(error.field && { field: error.field }),
      headers: error.headers,
    };
  }
  if (error instanceof LeaseError) {
    return { status: LEASE_STATUS[error.code], code: error.code, message: error.message, ...(error.field && { field: error.field }) };
  }
  if (error instanceof JobError) {
    const field = error.problems[0]?.field;
    return { status: JOB_STATUS[error.code], code: error.code, message: error.message, ...(field && { field }) };
  }
  if (error instanceof VramError) {
    return {
      status: VRAM_STATUS[error.code],
      code: error.code,
      message: error.message,
      ...(error.field && { field: error.field }),
      // the consumers' numbers (needed_bytes, available_bytes, ...) and whether asking again can help
      details: { ...error.extra, retryable: VRAM_RETRYABLE[error.code] },
    };
  }
  if (error instanceof ModelError) {
    return { status: MODEL_STATUS[error.code], code: error.code, message: error.message, ...(error.field && { field: error.field }) };
  }
  if (error instanceof DiskWriteError) {
    // Not stored, so never acknowledged: a full disk is 507 (free space, then retry); any other
    // write failure (read-only, I/O error) is 503.
    const full = error.code === "ENOSPC" || error.code === "EDQUOT";
    return {
      status: full ? STORAGE_STATUS.insufficient_storage : STORAGE_STATUS.storage_unavailable,
      code: full ? "insufficient_storage" : "storage_unavailable",
      message: `Not stored: ${error.message}`,
    };
  }
  return { status: 500, code: "internal", message: "Internal error; see the bridge's log" };
}
