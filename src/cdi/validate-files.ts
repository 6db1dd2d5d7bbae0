/** `cdi validate FILE...`: each file read, parsed by its extension and checked; one line per problem. */
import { DEFAULTS } from "../config/defaults.ts";
import { NotRegularFileError, readCapped } from "../util/files.ts";
import { decodeSpec, formatOf } from "./codec.ts";
import { notRegular, tooBig } from "./spec-format.ts";
import { statNode } from "./devnode.ts";
import { formatProblem, validateSpec } from "./validate.ts";

export interface ValidateFilesOptions {
  readonly consumerVersion: string | undefined;
  /** Compare device numbers with this host's nodes. */
  readonly hostCheck: boolean;
}

/** The report lines, and whether every file is free of errors (warnings allowed). */
export function validateFiles(files: readonly string[], o: ValidateFilesOptions): { lines: string[]; ok: boolean } {
  const lines: string[] = [];
  let ok = true;
  const safeStat = (p: string) => {
    try {
      return statNode(p);
    } catch {
      return null;
    }
  };
  for (const file of files) {
    const format = formatOf(file);
    if (format === null) {
      lines.push(`${file}: (file): consumers read only .json and .yaml files (not .yml), so this one is ignored`);
      ok = false;
      continue;
    }
    let raw: unknown;
    try {
      raw = decodeSpec(readSpec(file), format, file);
    } catch (error) {
      lines.push(`${file}: (file): ${(error as Error).message}`);
      ok = false;
      continue;
    }
    const { spec, problems } = validateSpec(raw, {
      file,
      ...(o.consumerVersion !== undefined && { consumerVersion: o.consumerVersion }),
      ...(o.hostCheck && { statNode: safeStat }),
    });
    const errors = problems.filter((p) => p.severity === "error").length;
    if (errors > 0) ok = false;
    lines.push(...problems.map(formatProblem));
    if (errors === 0 && spec !== null) {
      const consumer = o.consumerVersion === undefined ? "" : `, accepted by a CDI ${o.consumerVersion} consumer`;
      lines.push(`${file}: valid (cdiVersion ${spec.cdiVersion}, kind ${spec.kind}, ${spec.devices.length} devices${consumer})`);
    } else {
      lines.push(`${file}: invalid (${errors} error${errors === 1 ? "" : "s"})`);
    }
  }
  return { lines, ok };
}

/**
 * A spec's text: a regular file (or a link to one) of at most DEFAULTS.cdiSpecMaxBytes, opened
 * without blocking, so a FIFO named `x.yaml` is refused at once instead of waiting for a writer.
 */
function readSpec(file: string): string {
  let bytes: Uint8Array | null;
  try {
    bytes = readCapped(file, DEFAULTS.cdiSpecMaxBytes, true);
  } catch (error) {
    throw error instanceof NotRegularFileError ? notRegular(file) : error;
  }
  if (bytes === null) throw tooBig(file, DEFAULTS.cdiSpecMaxBytes);
  return new TextDecoder().decode(bytes);
}
