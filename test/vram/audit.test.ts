/** The VRAM audit trail is bounded: it rolls by size and keeps a fixed number of files. */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { VramAudit } from "../../src/vram/audit.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-audit-")));
afterEach(() => dir.cleanup());

test("past its size the trail rolls to .1, .2, …; the oldest file goes; every kept line is whole and in order", () => {
  const path = join(dir.path, "vram-audit.jsonl");
  const audit = new VramAudit(path, memoryLogger().log, () => 1_700_000_000_000, { maxBytes: 400, files: 3 });
  for (let i = 0; i < 200; i++) audit.record("SealVerified", { shard_id: `s-${i}` });
  audit.close();
  expect(readdirSync(dir.path).sort()).toEqual(["vram-audit.jsonl", "vram-audit.jsonl.1", "vram-audit.jsonl.2"]);
  const kept = [`${path}.2`, `${path}.1`, path].flatMap((f) => {
    expect(statSync(f).size).toBeLessThanOrEqual(400);
    return readFileSync(f, "utf8").split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as { shard_id: string }).shard_id);
  });
  expect(kept.at(-1)).toBe("s-199");
  const first = Number(kept[0]!.slice(2));
  expect(kept).toEqual(Array.from({ length: 200 - first }, (_, i) => `s-${first + i}`));
  expect(kept.length).toBeGreaterThan(5);
});

test("a reopened trail carries on from its size; the defaults bound it to a few MiB", () => {
  const path = join(dir.path, "vram-audit.jsonl");
  const a = new VramAudit(path, memoryLogger().log, () => 0, { maxBytes: 300, files: 2 });
  for (let i = 0; i < 3; i++) a.record("VramSealed", { shard_id: `a-${i}` });
  a.close();
  const b = new VramAudit(path, memoryLogger().log, () => 0, { maxBytes: 300, files: 2 });
  for (let i = 0; i < 3; i++) b.record("VramSealed", { shard_id: `b-${i}` });
  b.close();
  expect(existsSync(`${path}.1`)).toBe(true);
  expect(statSync(path).size).toBeLessThanOrEqual(300);
  expect(DEFAULTS.vramAuditBytes * DEFAULTS.vramAuditFiles).toBeLessThanOrEqual(16 << 20);
});
