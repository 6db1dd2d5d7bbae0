/**
 * Reading and writing spec files: JSON, or YAML through the `yaml` library (never a hand-written
 * parser). The format follows the file's extension, as the reference library's does: only
 * `.json` and `.yaml` are spec files.
 */
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { CdiSpec } from "./schema.ts";

export type SpecFormat = "json" | "yaml";

/** The format of a spec file by its name, or null when the reference library would not read it. */
export function formatOf(path: string): SpecFormat | null {
  if (path.endsWith(".json")) return "json";
  if (path.endsWith(".yaml")) return "yaml";
  return null;
}

/** A spec file that is not JSON or YAML at all. */
export class SpecSyntaxError extends Error {
  override name = "SpecSyntaxError";
}

/** Parses spec text; throws SpecSyntaxError naming the file. */
export function decodeSpec(text: string, format: SpecFormat, file: string): unknown {
  try {
    // YAML is a superset of JSON, but JSON.parse gives JSON's own errors and is faster.
    return format === "json" ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (error) {
    throw new SpecSyntaxError(`Cannot parse ${file} as ${format.toUpperCase()}: ${(error as Error).message.split("\n")[0]}`, { cause: error });
  }
}

/** Serialises a spec: JSON with two-space indent, or YAML; both end with a newline. */
export function encodeSpec(spec: CdiSpec, format: SpecFormat): string {
  if (format === "json") return JSON.stringify(spec, null, 2) + "\n";
  return stringifyYaml(spec, { lineWidth: 0 });
}
