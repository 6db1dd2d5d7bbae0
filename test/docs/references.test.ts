/**
 * The documents (README.md and docs/*.md) name only what exists: repository paths, make
 * targets, command-line flags, HTTP routes and GPU_BRIDGE_* variables are each looked up in
 * the repository as it is (the files on disk, the Makefile, the CLI's flag tables, the API
 * app's routes, src/), so a rename or a removal that leaves a document behind fails here. The
 * repository stands alone: no issue numbers, no documents from outside it.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { memoryLogger, REPO } from "../helpers.ts";

const read = (p: string) => readFileSync(join(REPO, p), "utf8");

/** The documents this test reads: README.md and every docs/*.md, whoever added them. */
const DOCS = ["README.md", ...readdirSync(join(REPO, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];

/** Inline code spans and the lines of fenced blocks, each with its document and line number. */
interface Code {
  readonly doc: string;
  readonly line: number;
  readonly text: string;
  readonly block: boolean;
}
function codeOf(doc: string): Code[] {
  const out: Code[] = [];
  let fenced = false;
  read(doc).split("\n").forEach((text, i) => {
    if (/^\s*```/.test(text)) {
      fenced = !fenced;
      return;
    }
    if (fenced) {
      // A command continued over lines (`\` at the end) is one entry, at its first line.
      const last = out.at(-1);
      if (last?.block === true && last.doc === doc && /\\\s*$/.test(last.text)) {
        out[out.length - 1] = { ...last, text: last.text.replace(/\\\s*$/, " ") + text };
      } else out.push({ doc, line: i + 1, text, block: true });
    } else for (const m of text.matchAll(/`([^`]+)`/g)) out.push({ doc, line: i + 1, text: m[1]!, block: false });
  });
  return out;
}
const CODE = DOCS.flatMap(codeOf);
const where = (c: { doc: string; line: number }) => `${c.doc}:${c.line}`;

function walk(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? ["node_modules", "build", ".git"].includes(e.name) ? [] : walk(join(dir, e.name), keep)
      : keep(e.name)
      ? [join(dir, e.name)]
      : []
  );
}

/** Whether `path` (relative to the repository; `*` in its last part matches any run of characters) exists. */
function exists(path: string): boolean {
  if (!path.includes("*")) return existsSync(join(REPO, path));
  const dir = join(REPO, dirname(path));
  const re = new RegExp(`^${path.slice(path.lastIndexOf("/") + 1).replace(/[.+?^()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
  return existsSync(dir) && readdirSync(dir).some((n) => re.test(n));
}

describe("every repository path the documents name exists", () => {
  const TOP = readdirSync(REPO).filter((n) => !n.startsWith(".") && !["node_modules", "dist", "build"].includes(n));
  const topDirs = TOP.filter((n) =>
    existsSync(join(REPO, n, ".")) && readdirSync(REPO, { withFileTypes: true }).find((e) => e.name === n)!.isDirectory()
  );

  test("paths in code spans and blocks (folders of the repository, and its top-level files)", () => {
    const missing: string[] = [];
    const pathLike = new RegExp(`(?:^|[\\s(=:"'])((?:${topDirs.join("|")})/[^\\s\`'"),;]*)`, "g");
    for (const c of CODE) {
      // A trailing `:LINE`, `#anchor` or StrykerJS's `~function` is not part of the path.
      const words = [...c.text.matchAll(pathLike)].map((m) => m[1]!.replace(/[~#].*$/, "").replace(/(:\d+)+$/, "").replace(/[.:]+$/, ""));
      for (const w of c.text.split(/[\s(),;]+/)) if (TOP.includes(w) && !topDirs.includes(w)) words.push(w);
      for (const w of words) {
        if (/[<>{}$]/.test(w)) continue; // a pattern (<id>, {x64,arm64}, $VAR), not a path
        if (!exists(w)) missing.push(`${where(c)}: ${w}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test("markdown links to files in the repository", () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      read(doc).split("\n").forEach((line, i) => {
        for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          const target = m[1]!.replace(/#.*$/, "");
          if (target === "" || /^[a-z]+:/.test(target)) continue; // an anchor in the page, or a URL
          if (!existsSync(join(REPO, dirname(doc), target))) missing.push(`${doc}:${i + 1}: ${m[1]}`);
        }
      });
    }
    expect(missing).toEqual([]);
  });
});

test("every make target the documents name is a Makefile target", () => {
  const makefile = read("Makefile");
  const vars = new Map([...makefile.matchAll(/^([A-Z_0-9]+)\s*:?=\s*(\S*)\s*$/gm)].map((m) => [m[1]!, m[2]!]));
  const expand = (s: string) => s.replace(/\$\(([A-Z_0-9]+)\)/g, (_, v: string) => vars.get(v) ?? `$(${v})`);
  const targets = new Set(
    [...makefile.matchAll(/^([^\s:#=][^:=]*?):(?!=)/gm)].flatMap((m) => expand(m[1]!).split(/\s+/)).filter((t) => t !== ""),
  );
  const missing: string[] = [];
  for (const c of CODE) {
    for (const m of c.text.matchAll(/(?:^|[;&|(]\s*|\$ )make((?:\s+\S+)*)/g)) {
      // The targets are the words before the first VAR=value or comment (make's own -flags are skipped).
      for (const word of m[1]!.trim().split(/\s+/)) {
        if (word.includes("=") || word.startsWith("#") || /^[^A-Za-z0-9_./-]/.test(word)) break;
        if (word === "" || word.startsWith("-")) continue;
        if (!targets.has(word)) missing.push(`${where(c)}: make ${word}`);
      }
    }
  }
  expect(targets.has("run")).toBe(true);
  expect(missing).toEqual([]);
});

/**
 * Flags of other tools that the documents quote alone in prose (a span such as `--bytecode`), where
 * no command says whose they are. Flags on a command line are checked only when the command is the
 * bridge or one of the repository's scripts, so `curl --fail` or `bun build --compile` need no entry.
 */
const FOREIGN_FLAGS = new Set([
  "--compile", // bun build's
  "--bytecode",
  "--splitting",
  "--minify",
  "--compile-jit-policy", // Bun's runtime flags, tried for the resident set
  "--smol",
  "--bail", // the test runner's, as StrykerJS passes it
  "--fail-with-body", // curl's
]);

/** Whether a command's words run the bridge (its binary, or its sources) or a script of the repository. */
function isOurs(words: readonly string[]): boolean {
  const cmd = words[0] ?? "";
  if (/(^|\/)gpu-bridge-host$|^\$GBH$|^"\$GBH"$|^(\.\/)?scripts\/|^(\.\/)?install\.sh$|check-lock\.mjs$/.test(cmd)) return true;
  // Bun, Deno or Node running src/main.ts or a script: `bun build`, `bun test` and the like are not ours.
  return /(^|\/)(bun|deno|node)$/.test(cmd) && words.some((w) => /^(\.\/)?(src\/main\.ts|scripts\/)/.test(w));
}

/**
 * The flags the command line knows: the keys of its flag tables, and every `--flag` its code
 * spells; and those of the repository's own scripts (scripts/gpu-check.ts, check-lock.mjs).
 */
function cliFlags(): Set<string> {
  const flags = new Set<string>();
  for (const f of walk(join(REPO, "scripts"), (n) => /\.(ts|mjs|sh)$/.test(n))) {
    for (const m of readFileSync(f, "utf8").matchAll(/--([a-z][a-z0-9-]+)/g)) flags.add(`--${m[1]}`);
  }
  for (const f of walk(join(REPO, "src", "cli"), (n) => n.endsWith(".ts"))) {
    const text = readFileSync(f, "utf8");
    for (
      const m of text.matchAll(/^\s*"?([a-z][a-z0-9-]*)"?\s*:\s*(?:"(?:bool|string|choice|int)|`(?:int|choice|string)|[A-Z][A-Z_]+\b)/gm)
    ) {
      flags.add(`--${m[1]}`);
    }
    for (const m of text.matchAll(/--([a-z][a-z0-9-]+)/g)) flags.add(`--${m[1]}`);
  }
  return flags;
}

test("every command-line flag the documents give the bridge is in its flag tables", () => {
  const known = cliFlags();
  expect(known.has("--state-dir")).toBe(true);
  const missing: string[] = [];
  const check = (c: Code, flag: string) => {
    if (!known.has(flag)) missing.push(`${where(c)}: ${flag} (another tool's? then add it to FOREIGN_FLAGS here)`);
  };
  for (const c of CODE) {
    const bare = /^(--[a-z][a-z0-9-]*)(?:[= ][^`]*)?$/.exec(c.text.trim());
    if (!c.block && bare !== null) {
      if (!FOREIGN_FLAGS.has(bare[1]!)) check(c, bare[1]!); // a flag named alone in prose: `--window N`
      continue;
    }
    // A code line is split into its commands; each that runs the bridge or a script is checked.
    for (const part of c.text.split(/\s*(?:\||&&|;|\$\(|\{)\s*/)) {
      const words = part.replace(/^\$\s+/, "").trim().split(/\s+/).filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w) && w !== "sudo");
      if (!isOurs(words)) continue;
      for (const w of words.slice(1)) {
        if (w.startsWith("#")) break; // a comment
        const flag = /^(--[a-z][a-z0-9-]*)(=.*)?[,.:;]?$/.exec(w);
        if (flag !== null) check(c, flag[1]!);
      }
    }
  }
  expect(missing).toEqual([]);
});

/** The API's routes as `METHOD /path/{}`, read from the app itself (a stub bridge: routes only). */
function apiRoutes(): Set<string> {
  const stub: unknown = new Proxy(() => stub, { get: (_t, k) => (k === Symbol.toPrimitive ? () => "" : stub), apply: () => stub });
  const app = createApp({ token: "t".repeat(32), log: memoryLogger().log, bridge: stub as never });
  return new Set(
    app.routes.filter((r) => /^(GET|POST|PUT|DELETE|PATCH)$/.test(r.method)).map((r) =>
      `${r.method} ${r.path.replace(/\/:[^/]+/g, "/{}").replace(/(.)\/$/, "$1")}`
    ),
  );
}

test("every HTTP route the documents name is served by the API", () => {
  const routes = apiRoutes();
  expect(routes.has("GET /v1/gpus")).toBe(true);
  const missing: string[] = [];
  for (const c of CODE) {
    for (const m of c.text.matchAll(/\b(GET|POST|PUT|DELETE|PATCH) (\/[^\s`,"]*)/g)) {
      const path = m[2]!.replace(/\[.*$/, "").replace(/\?.*$/, "").replace(/\{[^}]+\}/g, "{}");
      // `/v1/gpus/{id}/info\|ctl` in a table names several routes.
      const last = path.slice(path.lastIndexOf("/") + 1);
      const base = path.slice(0, path.lastIndexOf("/") + 1);
      for (const alt of last.split(/\\?\|/)) {
        const route = `${m[1]} ${(base + alt).replace(/(.)\/$/, "$1")}`;
        if (!routes.has(route)) missing.push(`${where(c)}: ${route}`);
      }
    }
  }
  expect(missing).toEqual([]);
});

test("every GPU_BRIDGE_* variable the documents name is read in the code", () => {
  const code = ["src", "ffi"].flatMap((d) => walk(join(REPO, d), (n) => n.endsWith(".ts"))).map((f) => readFileSync(f, "utf8")).join("\n");
  const missing: string[] = [];
  for (const doc of DOCS) {
    read(doc).split("\n").forEach((line, i) => {
      for (const m of line.matchAll(/\bGPU_BRIDGE_[A-Z0-9_]+/g)) if (!code.includes(m[0])) missing.push(`${doc}:${i + 1}: ${m[0]}`);
    });
  }
  expect(missing).toEqual([]);
});

describe("the repository stands alone", () => {
  /** Every text file of the repository a reader or a maintainer reads. */
  const TEXTS = [
    ...DOCS,
    ...["src", "mock", "ffi", "test", "bench", "scripts", "packaging"].flatMap((d) =>
      walk(join(REPO, d), (n) => /\.(ts|mjs|sh|md|c|h|cu|in|env)$/.test(n)).map((f) => relative(REPO, f))
    ),
  ];
  const THIS = relative(REPO, import.meta.path);

  test("no text refers to issue numbers", () => {
    const hits: string[] = [];
    for (const f of TEXTS.filter((f) => f !== THIS)) {
      read(f).split("\n").forEach((line, i) => {
        if (/\bissues?\s*#?\d+|(?:^|[\s(,])#\d+\b(?!-)/i.test(line)) hits.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(hits).toEqual([]);
  });

  test("no text refers to a document outside the repository", () => {
    const mds = new Set(walk(REPO, (n) => n.endsWith(".md")).map((f) => relative(REPO, f)));
    const basenames = new Set([...mds].map((f) => f.slice(f.lastIndexOf("/") + 1)));
    const hits: string[] = [];
    // The kubelet's vendored .proto text (embedded as is) keeps its own comments and links.
    for (const f of TEXTS.filter((f) => f !== THIS && !f.startsWith("src/k8s/proto/"))) {
      read(f).split("\n").forEach((line, i) => {
        if (/\.\.\/shared\b|\/work\/shared|\bcontract sections?\s+\d/i.test(line)) hits.push(`${f}:${i + 1}: ${line.trim()}`);
        for (const m of line.matchAll(/(?:^|[^\w./-])([\w./-]*[A-Za-z0-9_-]\.md)\b/g)) {
          const name = m[1]!.replace(/^\.\//, "");
          // A path into an install (PREFIX/share/doc/…/README.md) names one of ours by its file name.
          const resolved = [name, join(dirname(f), name)].some((p) => mds.has(p)) || basenames.has(name.slice(name.lastIndexOf("/") + 1));
          if (!resolved) hits.push(`${f}:${i + 1}: ${name}`);
        }
      });
    }
    expect(hits).toEqual([]);
  });
});
