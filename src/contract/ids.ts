/**
 * Id rules of our own, beside the VM's (limits.ts): a module with no imports, since the
 * command line checks `--device-id` on every start.
 */

/**
 * The one rule for the ids the bridge mints or accepts beyond the VM's own (workers, jobs, the
 * device id, Queen segments): 1-64 characters of A-Z a-z 0-9 . _ -, safe in a path, a control
 * line and JSON without escaping.
 */
export const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** The rule, as error messages state it. */
export const SAFE_ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ -";

/** A sealed shard's id (the consumers' contract: docs/vram-sharing.md): 1-256 characters of A-Z a-z 0-9 _ -. */
export const SHARD_ID = /^[A-Za-z0-9_-]{1,256}$/;

/** Whether `id` follows the safe-id rule (and is at most `maxLength` long). */
export function isSafeId(id: string, maxLength = 64): boolean {
  return id.length <= maxLength && SAFE_ID.test(id);
}

/** `text` made into a safe id: other characters become `-`, cut to 64; `fallback` if empty. */
export function toSafeId(text: string, fallback: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) || fallback;
}
