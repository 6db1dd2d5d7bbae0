import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelCatalog } from "../../src/contract/models.ts";
import { RegistryWatch } from "../../src/models/watch.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";

let tmp: { path: string; cleanup: () => void };
let watch: RegistryWatch | null = null;
beforeEach(() => (tmp = tempDir("gbh-watch-")));
afterEach(() => {
  watch?.close();
  tmp.cleanup();
});

test("RegistryWatch picks up a registry created after start (the polling fallback)", async () => {
  const dir = join(tmp.path, "later");
  const seen: ModelCatalog[] = [];
  const { log, lines } = memoryLogger();
  watch = new RegistryWatch({ dir, log, onChange: (c) => seen.push(c), pollMs: 50 });
  expect(watch.catalog.source).toBe("builtin");
  expect(lines.filter((l) => l.includes("using the built-in catalog")).length).toBe(1);
  mkdirSync(join(dir, "available", "m1"), { recursive: true });
  writeFileSync(join(dir, "available", "m1", "manifest.toml"), "x");
  await until(() => seen.length === 1, 3000, "the new registry");
  expect(seen[0]!.models.map((m) => m.model_id)).toEqual(["m1"]);
  expect(watch.catalog.source).toBe("registry");
  // The fallback warning was logged once, not on every poll.
  expect(lines.filter((l) => l.includes("using the built-in catalog")).length).toBe(1);
});

test("RegistryWatch.reload() reports no change for an identical catalog", () => {
  mkdirSync(join(tmp.path, "available", "m"), { recursive: true });
  writeFileSync(join(tmp.path, "available", "m", "manifest.toml"), "x");
  const { log } = memoryLogger();
  let changes = 0;
  watch = new RegistryWatch({ dir: tmp.path, log, onChange: () => changes++, pollMs: 60_000 });
  writeFileSync(join(tmp.path, "available", "m", "manifest.toml"), "x");
  expect(watch.reload()).toBe(false);
  writeFileSync(join(tmp.path, "available", "m", "manifest.toml"), "y");
  expect(watch.reload()).toBe(true);
  expect(changes).toBeGreaterThanOrEqual(1);
});
