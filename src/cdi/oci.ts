/** Reading an OCI runtime `config.json` at the boundary: JSON, then the OciSpec schema. */
import * as v from "valibot";
import { OciSpec } from "./schema.ts";

/** Parses `text` as an OCI spec; the error names the source and the field. */
export function parseOci(text: string, source: string): OciSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot parse ${source} as an OCI config.json: ${(error as Error).message}`, { cause: error });
  }
  const parsed = v.safeParse(OciSpec, raw);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const field = issue.path?.map((p) => String(p.key)).join(".") ?? "(root)";
    throw new Error(`Cannot read ${source} as an OCI config.json: ${field}: ${issue.message}`);
  }
  // The input itself, not the parser's output: keys keep their order, so a runtime diffing its
  // config.json before and after sees only what CDI changed.
  return raw as OciSpec;
}
