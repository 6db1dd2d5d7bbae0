/** The shipped tree kernels: the embedded module is the committed PTX, loadable by older drivers. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TREE_PTX } from "../../src/vram/ptx/tree-ptx.ts";
import { REPO } from "../helpers.ts";

test("tree-ptx.ts embeds sha256_tree.ptx exactly (regenerate both with make vram-ptx)", () => {
  expect(TREE_PTX).toBe(readFileSync(join(REPO, "src/vram/ptx/sha256_tree.ptx"), "utf8"));
});

test("the PTX targets ISA 7.0 / sm_80 and defines both kernels with the parameters the façade passes", () => {
  expect(TREE_PTX).toMatch(/^\.version 7\.0$/m);
  expect(TREE_PTX).toMatch(/^\.target sm_80$/m);
  const params = (name: string) =>
    [...TREE_PTX.slice(TREE_PTX.indexOf(`.entry ${name}(`)).split(")")[0]!.matchAll(/\.param \.(u\d+)/g)].map((m) => m[1]);
  expect(params("vram_tree_leaves")).toEqual(["u64", "u64", "u64", "u32"]);
  expect(params("vram_tree_level")).toEqual(["u64", "u64", "u32"]);
});
