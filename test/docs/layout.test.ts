/**
 * The repository stands alone: its references to the protocol page resolve, the README's layout
 * lists every folder and file a newcomer meets, and the protocol's command-line section every
 * command.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers.ts";

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "build" ? [] : files(join(dir, e.name))) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  );
}

/** GitHub's anchor for a heading. */
const anchor = (heading: string) => heading.toLowerCase().replace(/[^a-z0-9 -]/g, "").trim().replace(/ /g, "-");

test("every docs/protocol.md#anchor in the code names a heading of docs/protocol.md, and no 'contract section' is left", () => {
  const headings = new Set([...readFileSync(join(REPO, "docs", "protocol.md"), "utf8").matchAll(/^#+ (.+)$/gm)].map((m) => anchor(m[1]!)));
  const code = ["src", "mock", "ffi"].flatMap((d) => files(join(REPO, d)));
  const refs: string[] = [];
  const stale: string[] = [];
  for (const f of code) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/docs\/protocol\.md#([a-z0-9-]+)(?:, #([a-z0-9-]+))?/g)) refs.push(m[1]!, ...(m[2] ? [m[2]] : []));
    if (/contract sections? \d/.test(text)) stale.push(f);
  }
  expect(refs.length).toBeGreaterThan(20);
  expect(refs.filter((r) => !headings.has(r))).toEqual([]);
  expect(stale).toEqual([]);
});

test("the README's layout table lists every folder of src/, mock/ and ffi/", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const layout = readme.slice(readme.indexOf("## Layout"));
  const folders = [
    ...readdirSync(join(REPO, "src"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `src/${e.name}/`),
    ...readdirSync(join(REPO, "mock"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `mock/${e.name}/`),
    "ffi/",
  ];
  expect(folders.filter((f) => !layout.includes(`| \`${f}\` |`))).toEqual([]);
});

/** The README's Layout section, up to the next section. */
function layout(): string {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const from = readme.indexOf("## Layout");
  const to = readme.indexOf("\n## ", from + 1);
  return readme.slice(from, to < 0 ? undefined : to);
}

/** Names that .gitignore keeps out of the repository (build outputs, installs, local state). */
const IGNORED = new Set(
  readFileSync(join(REPO, ".gitignore"), "utf8").split("\n").map((l) => l.trim().replace(/^\//, "").replace(/\/$/, "")).filter((l) =>
    l !== "" && !l.startsWith("#") && !l.includes("*")
  ),
);

test("the README's layout names every top-level folder and file, every docs page and every script", () => {
  const text = layout();
  const top = readdirSync(REPO).filter((n) => !n.startsWith(".") && !IGNORED.has(n) && n !== "README.md");
  const missing = top.filter((n) => !text.includes(`\`${n}/`) && !text.includes(`\`${n}\``)); // `mock/` through `mock/console/`
  const docs = readdirSync(join(REPO, "docs")).filter((n) => n.endsWith(".md")).filter((n) => !text.includes(`\`${n}\``));
  const scripts = readdirSync(join(REPO, "scripts")).filter((n) => !text.includes(`\`${n}\``) && !text.includes(`\`${n}/\``));
  expect({ missing, docs, scripts }).toEqual({ missing: [], docs: [], scripts: [] });
});

test("docs/protocol.md's command-line section names every command of src/commands/", () => {
  const protocol = readFileSync(join(REPO, "docs", "protocol.md"), "utf8");
  const section = protocol.slice(protocol.indexOf("## 1. Command line"), protocol.indexOf("## 2."));
  // `bridge` and `publish` are the bare --list/--publish forms; `help` and `version` the flags.
  const internal = new Set(["bridge", "publish", "help", "version", "types"]);
  const commands = readdirSync(join(REPO, "src", "commands")).map((f) => f.replace(/\.ts$/, "")).filter((c) => !internal.has(c)).map((c) =>
    c.replace(/^(telemetry|models|peft)-/, "$1 ")
  );
  expect(commands).toContain("console");
  expect(commands.filter((c) => !section.includes(`\`${c}\``))).toEqual([]);
});

test("the documents give a node's ctl log the cap the code enforces (LIMITS.ctlLogBytes)", async () => {
  const { LIMITS } = await import("../../src/contract/limits.ts");
  const docs = ["README.md", ...readdirSync(join(REPO, "docs")).filter((n) => n.endsWith(".md")).map((n) => `docs/${n}`)];
  const claims: string[] = [];
  for (const doc of docs) {
    // "ctl 1 KiB", "ctl and lease 1 KiB", "ctl is bounded at 128 KiB": a node's ctl, not /gpu/bridge/ctl.
    const text = readFileSync(join(REPO, doc), "utf8").replace(/\s+/g, " ");
    for (const m of text.matchAll(/(?<!bridge\/)\bctl\b(?!`?'s)( (?:is bounded at|and lease|at most|cap) )?(\d+) KiB/g)) {
      claims.push(`${doc}: ${m[0]}`);
    }
  }
  expect(claims.length).toBeGreaterThanOrEqual(2); // README.md and docs/protocol.md state it
  expect(claims.filter((c) => !c.endsWith(` ${LIMITS.ctlLogBytes / 1024} KiB`))).toEqual([]);
});
