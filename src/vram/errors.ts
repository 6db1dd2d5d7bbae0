/** The shard capability's rules and its one error class (its code maps to an HTTP status). */

export const SHARD_ID = /^[A-Za-z0-9_-]{1,256}$/;
export const DIGEST = /^[0-9a-f]{64}$/;
/** Bytes staged on the host per copy into VRAM. */
export const CHUNK_BYTES = 8 * 1024 * 1024;

export type VramErrorCode =
  | "invalid"
  | "not_found"
  | "conflict"
  | "insufficient"
  | "permission"
  | "mismatch"
  | "policy"
  | "unavailable"
  | "cuda";

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
