/**
 * The import graph, checked two ways.
 *
 * `--list` must stay light: the static import graph of src/main.ts may not reach HTTP, CBOR,
 * FFI or socket code, nor node:fs and node:crypto (about 2 and 4 ms of start-up each). Those
 * load through dynamic `import()` only when a command needs them.
 *
 * Layers (docs/architecture.md): imports only go down, and folders never import each other in a
 * circle, type-only and dynamic imports included.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
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
  expect(graph).toContain(join(REPO, "src", "commands", "bridge.ts")); // --list's own command is on it
  const heavy = graph.filter((m) =>
    /hono|cbor|bun:ffi|node:fs|node:crypto|\/ffi\/|\/runtime\/(bun|deno)\.ts$|\/console\/session\.ts$|\/api\//.test(m)
  );
  expect(heavy).toEqual([]);
  expect(graph.length).toBeGreaterThan(5); // the walker really followed imports
});

/**
 * Each folder's layer; a folder may import its own layer or any below it. Within a layer the
 * folders' graph must be acyclic. `main` is src/main.ts.
 */
export const LAYERS: Readonly<Record<string, number>> = {
  "src/util": 0,
  ffi: 0,
  "src/contract": 1,
  "src/runtime": 1,
  // Every default and the host's own limits: below the capabilities that need them.
  "src/config": 1,
  "src/api": 2,
  "src/console": 2,
  "src/host": 2,
  "src/inventory": 2,
  "src/job": 2,
  "src/lease": 2,
  "src/models": 2,
  // The record of changes (the event stream and the audit trail read it).
  "src/changes": 2,
  "src/telemetry": 2,
  // CDI specs and sealed VRAM shards are capabilities too.
  "src/cdi": 2,
  // MPS control daemons and the edits that make a lease's container their client (reads src/cdi).
  "src/mps": 2,
  "src/vram": 2,
  // The audit trail: a listener of the record of changes, and its verifier.
  "src/audit": 2,
  // The VM talking back: read-back, appends, compaction, VM-granted leases and control lines.
  "src/vm": 2,
  "mock/console": 2,
  // The kubelet's device plugin (its leases come from src/lease through a port) and the stub kubelet.
  "src/k8s": 2,
  "mock/kubelet": 2,
  "src/app": 3,
  // The command line: flags parsed into the options the app is built from, and the help text
  // made from src/config. No capability reads the command line.
  "src/cli": 3,
  // The doctor reads every capability to report on the host.
  "src/doctor": 3,
  "src/commands": 4,
  main: 5,
};

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** The layer folder a file belongs to: `src/<folder>`, `mock/<folder>`, `ffi` or `main`. */
export function folderOf(file: string): string {
  const rel = relative(REPO, file).split("/");
  if (rel[0] === "ffi") return "ffi";
  if (rel[0] === "src" && rel.length === 2) return "main";
  return `${rel[0]}/${rel[1]}`;
}

/** Every relative import (static, dynamic, type-only, re-export) as folder -> folder edges. */
export function folderEdges(files: readonly string[]): Map<string, Map<string, string>> {
  const edges = new Map<string, Map<string, string>>();
  for (const file of files) {
    const from = folderOf(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)"(\.{1,2}\/[^"]+)"/gm)) {
      const to = folderOf(resolve(dirname(file), m[1]!));
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      edges.get(from)!.set(to, relative(REPO, file));
    }
  }
  return edges;
}

/** The first cycle found in `edges`, as a list of folders, or null. */
export function findCycle(edges: Map<string, Map<string, string>>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === "done") return null;
    if (state.get(n) === "open") return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, "open");
    stack.push(n);
    for (const next of edges.get(n)?.keys() ?? []) {
      const c = visit(next);
      if (c) return c;
    }
    stack.pop();
    state.set(n, "done");
    return null;
  };
  for (const n of edges.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

const files = [...tsFiles(join(REPO, "src")), ...tsFiles(join(REPO, "mock")), ...tsFiles(join(REPO, "ffi"))];

test("every folder of src/, mock/ and ffi/ has a layer", () => {
  const unknown = [...new Set(files.map(folderOf))].filter((f) => LAYERS[f] === undefined);
  expect(unknown).toEqual([]);
});

test("imports only go down the layers", () => {
  const upward: string[] = [];
  for (const [from, tos] of folderEdges(files)) {
    for (const [to, where] of tos) {
      if ((LAYERS[to] ?? Infinity) > (LAYERS[from] ?? -Infinity)) {
        upward.push(`${where} imports ${to} (layer ${LAYERS[to]}) from ${from} (layer ${LAYERS[from]})`);
      }
    }
  }
  expect(upward).toEqual([]);
});

test("no folders import each other in a circle", () => {
  expect(findCycle(folderEdges(files))).toBeNull();
});

test("the layer check sees an upward import and a circle", () => {
  const edges = new Map([
    ["src/contract", new Map([["src/lease", "src/contract/x.ts"]])],
    ["src/lease", new Map([["src/contract", "src/lease/y.ts"]])],
  ]);
  expect(findCycle(edges)).toEqual(["src/contract", "src/lease", "src/contract"]);
  expect((LAYERS["src/lease"] ?? 0) > (LAYERS["src/contract"] ?? 0)).toBe(true);
  // A capability importing the command line is an upward import.
  for (const capability of ["src/lease", "src/cdi", "src/vram", "src/telemetry", "src/contract"]) {
    expect(LAYERS["src/cli"]! > LAYERS[capability]!).toBe(true);
  }
  expect(folderEdges(files).get("main")?.has("src/commands")).toBe(true); // the walker sees dynamic imports
});

/**
 * The files that may name a runtime: the runtime seam, the FFI adapters, and the FFI loader
 * that picks one of them (it must, before either is imported: `bun:ffi` does not load on Deno).
 */
const MAY_NAME_A_RUNTIME = /^(src\/runtime\/[^/]+\.ts|ffi\/(bun|deno|loader)\.ts)$/;

/**
 * Where `source` names a runtime in code: `Bun`/`Deno` as an identifier or property
 * (`Bun.file`, `globalThis.Bun`, `{ Bun: … }` in a cast), `"Bun" in globalThis`, or a `bun:`
 * module. Comments do not count, nor messages that merely mention one.
 */
export function runtimeNames(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  const found: string[] = [];
  for (const m of code.matchAll(/["'`](Bun|Deno)["'`]\s+in\s+globalThis|(?:from\s*|import\s*\(\s*)["']bun:[a-z]+["']/g)) found.push(m[0]);
  const withoutStrings = code.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
  for (const m of withoutStrings.matchAll(/[\w.]*\b(?:Bun|Deno)\b[\w.]*/g)) found.push(m[0]);
  return found;
}

test("only the runtime seam and the FFI adapters name Bun or Deno", () => {
  const named: string[] = [];
  for (const file of files) {
    const rel = relative(REPO, file);
    if (MAY_NAME_A_RUNTIME.test(rel)) continue;
    for (const name of runtimeNames(readFileSync(file, "utf8"))) named.push(`${rel}: ${name}`);
  }
  expect(named).toEqual([]);
});

test("the runtime check sees each way of naming a runtime, and not a comment or a message", () => {
  expect(runtimeNames(`const b = (globalThis as unknown as { Bun: Api }).Bun;`)).toEqual(["Bun", ".Bun"]);
  expect(runtimeNames(`if ("Deno" in globalThis) x();`)).toEqual(['"Deno" in globalThis']);
  expect(runtimeNames(`Bun.file(p).text()`)).toEqual(["Bun.file"]);
  expect(runtimeNames(`import { dlopen } from "bun:ffi";`)).toEqual(['from "bun:ffi"']);
  expect(runtimeNames(`// Bun's I/O threads\n/** on Bun */ throw new Error("runs on Bun or Deno");`)).toEqual([]);
});
