/**
 * Reading and writing spec files with the `yaml` library (never a hand-written parser): strict
 * (duplicate keys refused, one document, aliases capped), as the reference library's YAML is.
 */
import { parse, stringify } from "yaml";
import { decodeSpec as decodeWith, type SpecFormat, type YamlParse } from "./spec-format.ts";
import type { CdiSpec } from "./schema.ts";

export { formatOf, type SpecFormat, SpecSyntaxError } from "./spec-format.ts";

/** The library's YAML parser, strict. */
export const libraryYaml: YamlParse = (text) => parse(text, { uniqueKeys: true, maxAliasCount: 100 });

/** Parses spec text with the library; throws SpecSyntaxError naming the file. */
export function decodeSpec(text: string, format: SpecFormat, file: string): unknown {
  return decodeWith(text, format, file, libraryYaml);
}

/** Serialises a spec: JSON with two-space indent, or YAML; both end with a newline. */
export function encodeSpec(spec: CdiSpec, format: SpecFormat): string {
  if (format === "json") return JSON.stringify(spec, null, 2) + "\n";
  return stringify(spec, { lineWidth: 0 });
}
