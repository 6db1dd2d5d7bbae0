/** `--help`'s environment section names every GPU_BRIDGE_* variable the code reads (or sets). */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { main } from "../../src/main.ts";
import { memoryStdio, REPO } from "../helpers.ts";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "build" ? [] : sources(join(dir, e.name))) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  );
}

test("every GPU_BRIDGE_* name in src/ and ffi/ has a line in --help's Environment section", async () => {
  const names = new Map<string, string>();
  for (const file of [...sources(join(REPO, "src")), ...sources(join(REPO, "ffi"))]) {
    if (file.endsWith(join("src", "cli", "usage.ts"))) continue; // the help itself
    for (const m of readFileSync(file, "utf8").matchAll(/\bGPU_BRIDGE_[A-Z0-9_]*[A-Z0-9]\b/g)) names.set(m[0], relative(REPO, file));
  }
  // The variables the issue named, so a broken scan cannot pass by finding nothing.
  for (const n of ["GPU_BRIDGE_MODEL_DIR", "GPU_BRIDGE_VRAM_GATE", "GPU_BRIDGE_VRAM_THREADS", "GPU_BRIDGE_API_TOKEN"]) {
    expect(names.has(n)).toBe(true);
  }
  const std = memoryStdio();
  expect(await main(["--help"], {}, std.io)).toBe(0);
  const help = std.out.join("");
  const start = help.indexOf("\nEnvironment:\n");
  expect(start).toBeGreaterThan(0);
  const section = help.slice(start, help.indexOf("\n\n", start + 2));
  const listed = new Set([...section.matchAll(/^ {2}([A-Z][A-Z0-9_]+) {2,}\S/gm)].map((m) => m[1]!));
  const missing = [...names].filter(([n]) => !listed.has(n)).map(([n, file]) => `${n} (${file})`);
  expect(missing).toEqual([]);
});
