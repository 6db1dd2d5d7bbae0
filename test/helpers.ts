/** Shared test helpers. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../src/log.ts";

export const REPO = join(import.meta.dir, "..");
export const FIXTURE = join(REPO, "test", "fixtures", "mock-list.json");

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = "gbh-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A logger that records lines instead of printing them. */
export function memoryLogger(level: "debug" | "info" | "warn" | "error" = "debug"): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level, write: (l) => lines.push(l) }), lines };
}

/** Resolves when `predicate` holds, polling every 5 ms, or rejects after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}
