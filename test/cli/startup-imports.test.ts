/**
 * `--list` must stay light: the static import graph of src/main.ts may not reach HTTP, CBOR,
 * FFI or socket code, nor node:fs and node:crypto (about 2 and 4 ms of start-up each). Those load through dynamic `import()` only when a command needs them.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { REPO } from "../helpers.ts";

function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!file.endsWith(".ts")) return;
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm)) {
      const spec = m[1]!;
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue; // erased at build time
      visit(spec.startsWith(".") ? resolve(dirname(file), spec) : spec);
    }
  };
  visit(entry);
  return seen;
}

test("the static import graph of src/main.ts loads no HTTP, CBOR, FFI, socket, fs or crypto code", () => {
  const graph = [...staticGraph(join(REPO, "src", "main.ts"))];
  const heavy = graph.filter((m) => /hono|cbor|bun:ffi|node:fs|node:crypto|\/ffi\/|\/runtime\/(bun|deno)\.ts$|\/console\/session\.ts$|\/api\//.test(m));
  expect(heavy).toEqual([]);
  expect(graph.length).toBeGreaterThan(5); // the walker really followed imports
});
