import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../../src/util/log.ts";
import { importModel } from "../../src/models/import.ts";
import { loadRegistry } from "../../src/models/registry.ts";
import type { ModelCatalog } from "../../src/contract/models.ts";
import { nextPollMs, RegistryWatch } from "../../src/models/watch.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let tmp: { path: string; cleanup: () => void };
let watch: RegistryWatch | null = null;
beforeEach(() => (tmp = tempDir("gbh-reg-hard-")));
afterEach(() => {
  watch?.close();
  watch = null;
  tmp.cleanup();
});
const model = (id: string, dir = tmp.path) => {
  mkdirSync(join(dir, "available", id), { recursive: true });
  writeFileSync(join(dir, "available", id, "manifest.toml"), `name = "${id}"\n`);
};
const SECRET = "Zq7vK2mP9xR4tW8yB3nL6hJ1";

describe("a symlinked active file is refused, and its target never logged", () => {
  test("is refused with the manifests' lstat check: its target's first line never reaches a warning", () => {
    model("m1");
    writeFileSync(join(tmp.path, "api-token"), SECRET + "\n");
    symlinkSync(join(tmp.path, "api-token"), join(tmp.path, "active"));
    const { catalog, warnings } = loadRegistry(tmp.path);
    expect(catalog.active).toBe("m1");
    expect(warnings.join("\n")).toContain("is a symlink");
    expect(warnings.join("\n")).not.toContain(SECRET);
  });

  test("a secret learnt after start-up (the API token) is masked in every later line, in every scope", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
    const child = log.child("registry");
    log.addSecret!(SECRET);
    child.warn(`Ignoring active: it names "${SECRET}", which is not in the registry`);
    expect(lines.join("")).not.toContain(SECRET);
    expect(lines.join("")).toContain('"***"');
  });
});

describe("a FIFO at <registry>/active is refused without blocking", () => {
  test("is refused without opening it (the load returns at once)", () => {
    model("m1");
    expect(spawnSync("mkfifo", [join(tmp.path, "active")]).status).toBe(0);
    const { catalog, warnings } = loadRegistry(tmp.path);
    expect(catalog.active).toBe("m1");
    expect(warnings.join("\n")).toContain("not a regular file");
  });
});

describe("a registry caught half-written never replaces a good catalog", () => {
  test("available/ renamed away and back, and active written before its model: no flap to the built-in catalog", () => {
    model("m1");
    model("m2");
    writeFileSync(join(tmp.path, "active"), "m2\n");
    const seen: ModelCatalog[] = [];
    watch = new RegistryWatch({ dir: tmp.path, log: memoryLogger().log, onChange: (c) => seen.push(c), pollMs: 60_000, settleMs: 60_000 });
    expect(watch.catalog.active).toBe("m2");
    renameSync(join(tmp.path, "available"), join(tmp.path, "available.old"));
    expect(watch.reload()).toBe(false);
    expect(watch.catalog.source).toBe("registry");
    renameSync(join(tmp.path, "available.old"), join(tmp.path, "available"));
    writeFileSync(join(tmp.path, "active"), "m3\n"); // the pointer first, the model a moment later
    expect(watch.reload()).toBe(false);
    expect(watch.catalog.active).toBe("m2");
    model("m3");
    expect(watch.reload()).toBe(true);
    expect(watch.catalog.active).toBe("m3");
    expect(seen.map((c) => `${c.source}:${c.active}`)).toEqual(["registry:m3"]);
  });

  test("a registry that stays broken past the settle time is adopted (with its warning)", () => {
    model("m1");
    const { log, lines } = memoryLogger();
    const clock = new FakeClock();
    watch = new RegistryWatch({ dir: tmp.path, log, onChange: () => {}, pollMs: 60_000, settleMs: 30, clock });
    renameSync(join(tmp.path, "available"), join(tmp.path, "gone"));
    expect(watch.reload()).toBe(false);
    clock.advance(40);
    // Past the settle time: this reload adopts it, unless the watcher's own (debounced) reload,
    // on the same clock, already did. Either way it is adopted.
    watch.reload();
    expect(watch.catalog.source).toBe("builtin");
    expect(lines.join("")).toContain("using the built-in catalog");
  });
});

describe("our log shows a peer's text as one line", () => {
  test("newline, ESC, NUL and bidi overrides are escaped", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
    log.info("released: done\n2026-01-01T00:00:00.000Z INFO  bridge: forged \u001b[31mred\u0000 \u202Eevil");
    expect(lines.length).toBe(1);
    expect(lines[0]!.split("\n").length).toBe(2); // one line, one newline at its end
    expect(lines[0]).toContain("done\\n2026");
    expect(lines[0]).toContain("\\u001b[31m");
    expect(lines[0]).toContain("\\u0000");
    expect(lines[0]).toContain("\\u202e");
  });
});

describe("models import: ids that do not read as they are are refused", () => {
  for (
    const [what, id] of [["a right-to-left override", "lora-\u202Eevil"], ["a zero-width space", "lora\u200bv2"], [
      "a C1 control",
      "lora\u0085v2",
    ], ["a BOM", "\ufefflora"]]
  ) {
    test(`an id with ${what} is refused up front, naming the rule`, () => {
      model("base-v1");
      const bundle = join(tmp.path, "bundle");
      mkdirSync(bundle);
      writeFileSync(join(bundle, "adapter.safetensors"), "x");
      writeFileSync(join(bundle, "lora.json"), '{"base_model":"base-v1"}');
      expect(() => importModel({ bundle, id: id!, registry: tmp.path })).toThrow("bidi/invisible formatting characters");
      expect(loadRegistry(tmp.path).catalog.models.map((m) => m.model_id)).toEqual(["base-v1"]);
    });
  }
});

describe("a large registry's fallback poll stays cheap", () => {
  test("is spaced to 50 times the cost of one load, so polling takes at most ~2% of a core", () => {
    expect(nextPollMs(1000, 2)).toBe(1000); // a small registry: every second
    expect(nextPollMs(1000, 120)).toBe(6000); // 5,000 models at ~120 ms a load
    expect(nextPollMs(1000, 10_000)).toBe(30_000);
  });

  test("5,000 models load whole, in byte order, with the same catalog as an lstat-per-entry reading", () => {
    for (let i = 0; i < 5000; i++) model(`m-${i}`);
    const { catalog, complete } = loadRegistry(tmp.path);
    expect(complete).toBe(true);
    expect(catalog.models.length).toBe(5000);
    const ids = catalog.models.map((m) => m.model_id);
    expect(ids.slice(0, 3)).toEqual(["m-0", "m-1", "m-10"]);
    expect([...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))).toEqual(ids);
  }, 60_000); // 5,000 folders written first: a busy disk makes that slow
});
