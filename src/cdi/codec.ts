/**
 * Reading and writing spec files with the `yaml` library (never a hand-written parser): strict
 * (duplicate keys refused, one document), as the reference library's YAML is, and with no
 * aliases at all: a spec needs none, and an alias repeats its anchor's whole value wherever it
 * stands, so a 180 KB file can name 2 GB of text (an alias bomb). The library's own guard counts
 * aliases, not what they expand to; refusing them is the bound.
 */
import { CST, Lexer, parse, stringify } from "yaml";
import { decodeSpec as decodeWith, type SpecFormat, type YamlParse } from "./spec-format.ts";
import type { CdiSpec } from "./schema.ts";

export { formatOf, type SpecFormat, SpecSyntaxError } from "./spec-format.ts";

/** Raised for a YAML alias in a spec. */
export class YamlAliasError extends Error {
  override name = "YamlAliasError";
}

/**
 * The library's YAML parser, strict, refusing aliases (YamlAliasError, naming the first one and
 * its line). Text holding a `*` is first run through the library's lexer, which stops at the
 * first alias token: composing a document of 20,000 aliases before refusing it takes seconds.
 */
export const libraryYaml: YamlParse = (text) => {
  if (text.includes("*")) {
    const alias = firstAlias(text);
    if (alias !== null) {
      throw new YamlAliasError(`a YAML alias ${alias} is refused: a spec needs none, and each repeats its anchor's whole value`);
    }
  }
  // maxAliasCount 0 as well: no alias is ever resolved, whatever the lexer saw.
  return parse(text, { uniqueKeys: true, maxAliasCount: 0 });
};

/** `*name at line N` for the first alias token of `text`, or null where there is none. */
function firstAlias(text: string): string | null {
  let line = 1;
  for (const token of new Lexer().lex(text)) {
    if (CST.tokenType(token) === "alias") return `${token.trimEnd()} at line ${line}`;
    for (let i = token.indexOf("\n"); i >= 0; i = token.indexOf("\n", i + 1)) line++;
  }
  return null;
}

/** Parses spec text with the library; throws SpecSyntaxError naming the file. */
export function decodeSpec(text: string, format: SpecFormat, file: string): unknown {
  return decodeWith(text, format, file, libraryYaml);
}

/**
 * Serialises a spec: JSON with two-space indent, or YAML; both end with a newline. YAML never
 * with anchors and aliases (the library's default for an object met twice): specs refuse them.
 */
export function encodeSpec(spec: CdiSpec, format: SpecFormat): string {
  if (format === "json") return JSON.stringify(spec, null, 2) + "\n";
  return stringify(spec, { lineWidth: 0, aliasDuplicateObjects: false });
}
