/** Switching the active model: the registry's `active` file, rewritten atomically. */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/**
 * Makes `modelId` the registry's active model. Atomic for every reader: a complete file
 * replaces the old one in one rename, so the VM never sees half a pointer.
 */
export function writeActive(registryDir: string, modelId: string): void {
  const tmp = join(registryDir, `.active.tmp-${process.pid}`);
  writeFileSync(tmp, modelId + "\n");
  renameSync(tmp, join(registryDir, "active"));
}
