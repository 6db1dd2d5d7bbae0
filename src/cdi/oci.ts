/**
 * Reading an OCI runtime `config.json` at the boundary: JSON, then the OciSpec schema. The
 * schema (valibot) is loaded only when shape.ts cannot vouch for the document, which is when
 * there is a problem to word: `cdi apply` reads a config.json on every container's start.
 */
import type { OciSpec } from "./schema.ts";
import { isOciSpecData } from "./shape.ts";

/** Parses `text` as an OCI spec; the error names the source and the field. */
export async function parseOci(text: string, source: string): Promise<OciSpec> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot parse ${source} as an OCI config.json: ${(error as Error).message}`, { cause: error });
  }
  if (!isOciSpecData(raw)) {
    const problem = (await import("./oci-schema.ts")).ociProblem(raw);
    if (problem !== null) throw new Error(`Cannot read ${source} as an OCI config.json: ${problem}`);
  }
  // The input itself, not the parser's output: keys keep their order, so a runtime diffing its
  // config.json before and after sees only what CDI changed.
  return raw as OciSpec;
}
