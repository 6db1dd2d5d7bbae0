/** Atomic file replacement: a consumer reading the spec folder never sees half a spec. */
import { replaceFileDurably } from "../util/files.ts";

/**
 * Replaces `path` with `text` through the tree's one durable writer: a temporary file beside it
 * (a name without .json or .yaml, so a consumer scanning the folder skips it), written fully,
 * synced and renamed over `path`. On a full disk it throws `DiskWriteError` and the old file
 * stays whole.
 */
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  replaceFileDurably(path, text, mode);
}
