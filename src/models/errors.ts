/** The model registry's one error class: its code maps to an HTTP status (src/api/errors.ts). */

export type ModelErrorCode = "not_found" | "no_registry" | "invalid" | "not_approved" | "verify_failed" | "too_large";

/** A refused registry operation (activation, approval); `extra` holds what a client may branch on. */
export class ModelError extends Error {
  override name = "ModelError";
  readonly code: ModelErrorCode;
  readonly field: string | undefined;
  readonly extra: Readonly<Record<string, unknown>>;
  constructor(code: ModelErrorCode, message: string, field?: string, extra: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.field = field;
    this.extra = extra;
  }
}

/** A bundle, export or id that `models import` refuses. */
export class ImportError extends Error {
  override name = "ImportError";
}
