/**
 * Spec file formats, without a YAML library: the reference library reads only `.json` and
 * `.yaml` files, the format following the extension. The YAML parser is passed in, so the hot
 * path (`cdi apply`) can use the runtime's native one and never load the library.
 */
import { runtimeFiles } from "../runtime/files.ts";

export type SpecFormat = "json" | "yaml";
/** Parses YAML text into plain data; throws on a syntax error. */
export type YamlParse = (text: string) => unknown;

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

/** A file that is not read: not a regular file, or bigger than the cap. */
export class SpecFileError extends Error {
  override name = "SpecFileError";
}

/** The refusals, worded once for both readers. */
export const notRegular = (path: string) =>
  new SpecFileError(`Cannot read ${path}: not a regular file (a device, FIFO or socket, or a link to one)`);
export const tooBig = (path: string, cap: number, size?: number) =>
  new SpecFileError(
    `Cannot read ${path}: it holds ${size === undefined ? `more than ${cap}` : size} bytes, over the limit of ${cap} bytes for one file`,
  );

/** Parses spec text; throws SpecSyntaxError naming the file. */
export function decodeSpec(text: string, format: SpecFormat, file: string, parseYaml: YamlParse): unknown {
  try {
    return format === "json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new SpecSyntaxError(`Cannot parse ${file} as ${format.toUpperCase()}: ${(error as Error).message.split("\n")[0]}`, {
      cause: error,
    });
  }
}

/**
 * The runtime's native YAML parser (src/runtime/files.ts), or null. About a hundred times faster than loading
 * and running the library on a cold start, which matters on every container's start path. It
 * lets a duplicate key through (the last wins) where the library refuses it; `cdi validate`
 * always uses the library.
 */
export function nativeYaml(): YamlParse | null {
  const parse = runtimeFiles()?.parseYaml;
  if (parse === undefined) return null;
  return (text) => {
    const out = parse(text);
    // Several documents come back as an array; a spec is one document.
    if (Array.isArray(out) && /^---/m.test(text)) throw new Error("several YAML documents in one file; a spec is one");
    return out;
  };
}
