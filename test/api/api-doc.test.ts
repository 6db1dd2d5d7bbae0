/** docs/api.md is the OpenAPI document rendered (scripts/api-doc.ts): it says what the routes do. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fullDocument, renderApiReference } from "../../scripts/api-doc.ts";
import { REPO } from "../helpers.ts";

test("docs/api.md is the reference rendered from the OpenAPI document (run 'bun scripts/api-doc.ts' after changing a route)", () => {
  const doc = fullDocument();
  const text = readFileSync(join(REPO, "docs", "api.md"), "utf8");
  expect(text).toBe(renderApiReference(doc));
  // Every operation has its section, with its summary.
  for (const [path, item] of Object.entries(doc.paths) as [string, Record<string, { summary: string; tags?: string[] }>][]) {
    for (const [method, op] of Object.entries(item)) {
      if (op.tags !== undefined) continue;
      expect(text).toContain(`## ${method.toUpperCase()} ${path}\n\n${op.summary}.`);
    }
  }
});
