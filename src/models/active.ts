/** Switching the active model: the registry's `active` file, rewritten atomically. */
import { join } from "node:path";
import { replaceFileDurably } from "../util/files.ts";

/**
 * Makes `modelId` the registry's active model. Atomic for every reader: a complete file
 * replaces the old one in one rename, so the VM never sees half a pointer; on a full disk the
 * old pointer stays and `DiskWriteError` says why.
 */
export function writeActive(registryDir: string, modelId: string): void {
  replaceFileDurably(join(registryDir, "active"), modelId + "\n", 0o644);
}
