import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelCatalog } from "../../src/contract/models.ts";
import { RegistryWatch } from "../../src/models/watch.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let tmp: { path: string; cleanup: () => void };
let watch: RegistryWatch | null = null;
beforeEach(() => (tmp = tempDir("gbh-watch-")));
afterEach(() => {
  watch?.close();
  tmp.cleanup();
});

test("RegistryWatch picks up a registry created after start on its poll, every pollMs of its clock", () => {
  const dir = join(tmp.path, "later");
  const seen: ModelCatalog[] = [];
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  watch = new RegistryWatch({ dir, log, onChange: (c) => seen.push(c), pollMs: 1000, clock });
  expect(watch.catalog.source).toBe("builtin");
  expect(lines.filter((l) => l.includes("using the built-in catalog")).length).toBe(1);
  clock.advance(1000); // the first poll: still nothing there
  expect(clock.pending).toBeGreaterThanOrEqual(1); // and the next one is set
  mkdirSync(join(dir, "available", "m1"), { recursive: true });
  writeFileSync(join(dir, "available", "m1", "manifest.toml"), "x");
  clock.advance(999);
  expect(seen).toEqual([]); // the directory did not exist at start: no events, only the poll finds it
  clock.advance(1);
  expect(seen.map((c) => c.models.map((m) => m.model_id))).toEqual([["m1"]]);
  expect(watch.catalog.source).toBe("registry");
  // The fallback warning was logged once, not on every poll.
  expect(lines.filter((l) => l.includes("using the built-in catalog")).length).toBe(1);
  watch.close();
  expect(clock.pending).toBe(0);
});

test("a half-written registry is adopted exactly settleMs of the watch's clock after it was first seen", () => {
  mkdirSync(join(tmp.path, "available", "m1"), { recursive: true });
  writeFileSync(join(tmp.path, "available", "m1", "manifest.toml"), "x");
  const clock = new FakeClock();
  const { log, lines } = memoryLogger();
  watch = new RegistryWatch({ dir: tmp.path, log, onChange: () => {}, pollMs: 3_600_000, settleMs: 5000, clock });
  renameSync(join(tmp.path, "available"), join(tmp.path, "gone"));
  expect(watch.reload()).toBe(false); // first seen half-written now
  clock.advance(4999);
  expect(watch.reload()).toBe(false);
  expect(watch.catalog.source).toBe("registry");
  clock.advance(1);
  watch.reload(); // (or the watcher's own debounced reload did, on the same clock)
  expect(watch.catalog.source).toBe("builtin");
  expect(lines.join("")).toContain("using the built-in catalog");
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
