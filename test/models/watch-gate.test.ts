import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelCatalog } from "../../src/contract/models.ts";
import { approvalRefusal } from "../../src/models/approval.ts";
import { type Refusal, RegistryWatch } from "../../src/models/watch.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let tmp: { path: string; cleanup: () => void };
let watch: RegistryWatch | null = null;
beforeEach(() => (tmp = tempDir("gbh-watch-gate-")));
afterEach(() => {
  watch?.close();
  tmp.cleanup();
});

function model(id: string, manifest: string): void {
  mkdirSync(join(tmp.path, "available", id), { recursive: true });
  writeFileSync(join(tmp.path, "available", id, "manifest.toml"), manifest);
}
const gate = (c: ModelCatalog, id: string) => approvalRefusal(c, id);

test("at start, an active file naming a pending adapter is refused: the first model the gate admits is active, and the file says so", () => {
  model("a-lora", '[model]\nbase = "z-base"\n');
  model("z-base", '[model]\nid = "z-base"\n');
  writeFileSync(join(tmp.path, "active"), "a-lora\n");
  const refused: Refusal[] = [];
  const { log, lines } = memoryLogger();
  watch = new RegistryWatch({ dir: tmp.path, log, onChange: () => {}, gate, onRefused: (r) => refused.push(r), clock: new FakeClock() });
  expect(watch.catalog.active).toBe("z-base");
  expect(readFileSync(join(tmp.path, "active"), "utf8")).toBe("z-base\n");
  expect(refused).toEqual([{ model_id: "a-lora", kept: "z-base", reason: expect.stringContaining("it is pending") }]);
  expect(lines.some((l) => l.includes('Refused "a-lora"') && l.includes("z-base stays active"))).toBe(true);
});

test("a hand edit to an approved adapter stands; to a rejected one is written back; switchTo passes the gate with its note", () => {
  model("base", "[model]\n");
  model("ok", '[model]\nbase = "base"\n[approval]\nstatus = "approved"\n');
  model("no", '[model]\nbase = "base"\n[approval]\nstatus = "rejected"\n');
  writeFileSync(join(tmp.path, "active"), "base\n");
  const notes: unknown[] = [];
  const clock = new FakeClock();
  watch = new RegistryWatch({ dir: tmp.path, log: memoryLogger().log, onChange: (_c, n) => notes.push(n), gate, pollMs: 1000, clock });
  writeFileSync(join(tmp.path, "active"), "ok\n");
  clock.advance(1000);
  expect(watch.catalog.active).toBe("ok");
  writeFileSync(join(tmp.path, "active"), "no\n");
  clock.advance(1000);
  expect(watch.catalog.active).toBe("ok");
  expect(readFileSync(join(tmp.path, "active"), "utf8")).toBe("ok\n");
  expect(watch.switchTo("no", { forced: true })).toBe(true);
  expect(watch.catalog.active).toBe("no");
  expect(notes).toEqual([undefined, { forced: true }]);
});

test("when no model of the registry may be active, the built-in catalog is served and the error logged", () => {
  model("only", '[model]\nbase = "gone"\n');
  const { log, lines } = memoryLogger();
  watch = new RegistryWatch({ dir: tmp.path, log, onChange: () => {}, gate, clock: new FakeClock() });
  expect(watch.catalog.source).toBe("builtin");
  expect(lines.some((l) => l.includes("no model of the registry may be active"))).toBe(true);
});
