/** The shard capability's rules and its one error class (its code maps to an HTTP status). */

export { SHARD_ID } from "../contract/ids.ts";
export const DIGEST = /^[0-9a-f]{64}$/;
/** Bytes staged on the host per copy into VRAM. */
export const CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * The consumers' error kinds (docs/vram-sharing.md) are codes of their own: `insufficient_vram` (VRAM, not
 * host memory), `not_sealed`, `integrity_violation` (bytes that are not the ones expected),
 * `seal_verification_failed` (VRAM that no longer holds what was sealed), `cuda_allocation_failed`,
 * `cuda_deallocation_failed`; `cuda` is any other driver call that failed.
 */
export type VramErrorCode =
  | "invalid"
  | "not_found"
  | "not_sealed"
  | "conflict"
  | "insufficient_vram"
  | "permission"
  | "integrity_violation"
  | "seal_verification_failed"
  | "policy"
  | "unavailable"
  | "cuda_allocation_failed"
  | "cuda_deallocation_failed"
  | "cuda";

/** Whether asking again can help: VRAM freed by a release, a backend that comes back. */
export const VRAM_RETRYABLE: Readonly<Record<VramErrorCode, boolean>> = {
  invalid: false,
  not_found: false,
  not_sealed: false,
  conflict: false,
  insufficient_vram: true,
  permission: false,
  integrity_violation: false,
  seal_verification_failed: false,
  policy: false,
  unavailable: true,
  cuda_allocation_failed: true,
  cuda_deallocation_failed: false,
  cuda: false,
};

/** A refused shard operation; `code` maps to an HTTP status. */
export class VramError extends Error {
  override name = "VramError";
  readonly code: VramErrorCode;
  readonly field: string | undefined;
  readonly extra: Record<string, unknown>;
  constructor(code: VramErrorCode, message: string, field?: string, extra: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.field = field;
    this.extra = extra;
  }
}

/** A shard this caller cannot name: never sealed here, released, or another principal's (they answer alike). */
export const unknownShard = (id: string): VramError =>
  new VramError("not_sealed", `Unknown shard ${JSON.stringify(id)}: no shard with that id is sealed`, "id");
