/**
 * `cdi apply` runs on every container's start: the modules it loads on Bun may not reach
 * node:fs, node:path (about 9 and 8 M instructions of start-up each), the YAML library or
 * valibot (about 2 M to load and build the schemas). Those stay behind dynamic imports:
 * devnode.ts only when a node needs a stat, files.ts only with --output, the library only where
 * the runtime has no YAML parser, the schemas only where shape.ts cannot vouch for a document,
 * the rules only for a spec the cache does not hold, node:fs only to write the cache.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { REPO } from "../helpers.ts";

/** Modules reached by static (value) imports from `entry`. */
function staticGraph(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    if (!file.endsWith(".ts")) return;
    for (const m of readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm)) {
      if (/^\s*(?:import|export)\s+type\s/.test(m[0])) continue;
      visit(m[1]!.startsWith(".") ? resolve(dirname(file), m[1]!) : m[1]!);
    }
  };
  visit(entry);
  return [...seen];
}

test("the modules cdi apply loads on Bun reach no node:fs, node:path, yaml or valibot", () => {
  const entries = [
    "commands/cdi.ts",
    "cdi/registry.ts",
    "cdi/apply.ts",
    "cdi/oci.ts",
    "cdi/spec-fs.ts",
    "runtime/files.ts",
    "cdi/spec-format.ts",
  ];
  const graph = new Set(entries.flatMap((e) => staticGraph(join(REPO, "src", e))));
  expect([...graph].filter((m) => /^(node:fs|node:path|yaml|fs|path|valibot)$/.test(m))).toEqual([]);
  expect(graph.has(join(REPO, "src", "cdi", "shape.ts"))).toBe(true); // the walker followed imports
  expect(graph.has(join(REPO, "src", "cdi", "spec-cache.ts"))).toBe(true);
  // A cache hit needs no rules: rules.ts loads with a spec that is read and validated.
  expect(graph.has(join(REPO, "src", "cdi", "rules.ts"))).toBe(false);
  expect(readFileSync(join(REPO, "src", "cdi", "registry.ts"), "utf8")).toContain('await import("./rules.ts")');
  // And the commands that need them do load them.
  expect(staticGraph(join(REPO, "src", "cdi", "codec.ts"))).toContain("yaml");
  expect(staticGraph(join(REPO, "src", "cdi", "devnode.ts"))).toContain("node:fs");
  expect(staticGraph(join(REPO, "src", "cdi", "validate.ts"))).toContain("valibot");
  expect(staticGraph(join(REPO, "src", "cdi", "oci-schema.ts"))).toContain("valibot");
});
