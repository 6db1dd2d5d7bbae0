/** docs/events.md's table of types is the table the record accepts (src/changes/types.ts), in order. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CHANGE_KINDS } from "../../src/changes/types.ts";
import { REPO } from "../helpers.ts";

test("docs/events.md lists exactly the change types, in the table's order", () => {
  const text = readFileSync(join(REPO, "docs", "events.md"), "utf8");
  const section = text.slice(text.indexOf("## The types"), text.indexOf("## `GET /v1/events`"));
  const documented = [...section.matchAll(/^\| `([a-z_.]+)` \|/gm)].map((m) => m[1]);
  const kinds = [...CHANGE_KINDS.keys()].filter((t) => !t.startsWith("test."));
  expect(documented).toEqual(kinds);
});
