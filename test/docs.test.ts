/** The repository stands alone: its references to the protocol page resolve, and the README's layout lists every folder. */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./helpers.ts";

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
