/**
 * Every PTX module the binary ships, read from the modules that embed them (so the verdicts
 * follow whatever headers those carry): each string export that holds a `.version` line.
 */
import * as jobPtx from "../job/ptx/builtin.ts";
import * as treePtx from "../vram/ptx/generated/tree-ptx.ts";
import { parsePtxHeader, type PtxHeader } from "./ptx.ts";

export interface ShippedPtx extends PtxHeader {
  /** Where it is embedded: `job/VADD_PTX`, `vram/TREE_PTX`. */
  readonly name: string;
  /** What needs it, for the report. */
  readonly use: string;
}

const SOURCES = [
  { prefix: "job", use: "job kernels (--runner cuda)", module: jobPtx as Record<string, unknown> },
  { prefix: "vram", use: "GPU tree hashing (sealing, re-verification)", module: treePtx as Record<string, unknown> },
];

/** The shipped modules with their headers; one whose header cannot be read is listed with isa "?". */
export function shippedPtx(): ShippedPtx[] {
  const out: ShippedPtx[] = [];
  for (const s of SOURCES) {
    for (const [key, value] of Object.entries(s.module)) {
      if (typeof value !== "string" || !/^\s*\.version\s/m.test(value)) continue;
      const header = parsePtxHeader(value) ?? { isa: "?", target: "?", entries: [] };
      out.push({ ...header, name: `${s.prefix}/${key}`, use: s.use });
    }
  }
  return out;
}
