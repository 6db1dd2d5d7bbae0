import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { compareBytes, loadRegistry } from "../../src/models/registry.ts";
import { tempDir } from "../helpers.ts";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ path: dir, cleanup } = tempDir("gbh-reg-")));
afterEach(() => cleanup());

function model(id: string, manifest: string | Uint8Array = `[model]\nid = "${id}"\n`): void {
  mkdirSync(join(dir, "available", id), { recursive: true });
  writeFileSync(join(dir, "available", id, "manifest.toml"), manifest);
}

describe("loadRegistry()", () => {
  test("without a directory answers the built-in catalog silently", () => {
    const { catalog, warnings } = loadRegistry(undefined);
    expect(catalog).toEqual(builtinCatalog());
    expect(catalog.active).toBe("vision-lora-edge");
    expect(warnings).toEqual([]);
  });

  test("reads manifests verbatim, sorted by id, with the active file's first non-blank line", () => {
    model("zeta", "  untrimmed\n\n");
    model("alpha");
    model("Mid");
    writeFileSync(join(dir, "active"), "\n   \n  zeta  \nalpha\n");
    const { catalog, warnings } = loadRegistry(dir);
    expect(catalog.source).toBe("registry");
    expect(catalog.models.map((m) => m.model_id)).toEqual(["Mid", "alpha", "zeta"]);
    expect(catalog.models[2]!.manifest_toml).toBe("  untrimmed\n\n");
    expect(catalog.active).toBe("zeta");
    expect(warnings).toEqual([]);
  });

  test("skips files, blank names, entries without manifest.toml and manifest directories", () => {
    model("good");
    writeFileSync(join(dir, "available", "a-file"), "x");
    mkdirSync(join(dir, "available", "   "));
    writeFileSync(join(dir, "available", "   ", "manifest.toml"), "blank name");
    mkdirSync(join(dir, "available", "no-manifest"));
    mkdirSync(join(dir, "available", "dir-manifest", "manifest.toml"), { recursive: true });
    const { catalog } = loadRegistry(dir);
    expect(catalog.models.map((m) => m.model_id)).toEqual(["good"]);
    expect(catalog.active).toBe("good");
  });

  test("skips symlinked entries and manifests with a warning, and survives symlink loops", () => {
    model("real");
    symlinkSync(join(dir, "available", "real"), join(dir, "available", "linked"));
    mkdirSync(join(dir, "available", "leaky"));
    symlinkSync("/etc/hostname", join(dir, "available", "leaky", "manifest.toml"));
    symlinkSync(join(dir, "available", "loop"), join(dir, "available", "loop"));
    const { catalog, warnings } = loadRegistry(dir);
    expect(catalog.models.map((m) => m.model_id)).toEqual(["real"]);
    expect(warnings.join("\n")).toContain('"linked"');
    expect(warnings.join("\n")).toContain('"leaky"');
  });

  test("skips ids the VM would refuse, naming the rule", () => {
    model("ok");
    model("has space");
    model("x".repeat(129));
    const { catalog, warnings } = loadRegistry(dir);
    expect(catalog.models.map((m) => m.model_id)).toEqual(["ok"]);
    expect(warnings.some((w) => w.includes("has space") && w.includes("whitespace"))).toBe(true);
    expect(warnings.some((w) => w.includes("1-128 bytes, got 129"))).toBe(true);
  });

  test.each([
    ["is missing", () => {}],
    ["names an unknown model", () => writeFileSync(join(dir, "active"), "ghost\n")],
    ["is blank", () => writeFileSync(join(dir, "active"), "\n \n")],
    ["names an id over 128 bytes", () => writeFileSync(join(dir, "active"), "b".repeat(129))],
    ["is huge", () => writeFileSync(join(dir, "active"), "b\n".repeat(40_000))],
    ["is a directory", () => mkdirSync(join(dir, "active"))],
  ])("makes the first model active when the active file %s", (_why, setup) => {
    model("b");
    model("a");
    setup();
    expect(loadRegistry(dir).catalog.active).toBe("a");
  });

  test.each([
    ["available/ is missing", () => writeFileSync(join(dir, "active"), "fine\n"), "cannot list"],
    ["available/ holds no usable model", () => mkdirSync(join(dir, "available", "empty"), { recursive: true }), "no usable model"],
    ["a manifest is over 8 KiB", () => (model("fine"), model("big", "x".repeat(8193))), "larger than 8192 bytes"],
    ["a manifest is not UTF-8", () => (model("fine"), model("bad", new Uint8Array([0x5b, 0xff, 0xfe]))), "not valid UTF-8"],
  ])("falls back to the built-in catalog with a warning when %s", (_why, setup, reason) => {
    setup();
    const { catalog, warnings } = loadRegistry(dir);
    expect(catalog).toEqual(builtinCatalog());
    expect(warnings.at(-1)).toContain(reason);
    expect(warnings.at(-1)).toContain("using the built-in catalog");
  });

  test("accepts a manifest of exactly 8192 bytes", () => {
    model("edge", "y".repeat(8192));
    expect(loadRegistry(dir).catalog.models[0]!.manifest_toml.length).toBe(8192);
  });

  test("falls back when the registry cannot be read at all", () => {
    model("locked");
    if (process.getuid?.() === 0) {
      // root reads through mode bits; a path that is a file gives the same kind of read error
      const { catalog } = loadRegistry(join(dir, "available", "locked", "manifest.toml"));
      expect(catalog.source).toBe("builtin");
      return;
    }
    chmodSync(join(dir, "available"), 0o000);
    try {
      expect(loadRegistry(dir).catalog.source).toBe("builtin");
    } finally {
      chmodSync(join(dir, "available"), 0o755);
    }
  });
});

describe("compareBytes()", () => {
  test("orders by UTF-8 bytes, not UTF-16 units", () => {
    // U+FF5E (EF BD 9E) sorts before U+1F600 (F0 9F ...) in bytes, but after it in UTF-16.
    expect(compareBytes("\uff5e", "\u{1f600}")).toBeLessThan(0);
    expect("\uff5e" < "\u{1f600}").toBe(false);
    expect(compareBytes("B", "a")).toBeLessThan(0);
    expect(compareBytes("a", "ab")).toBeLessThan(0);
  });
});
