/**
 * A Queen export bundle, `/queen/export/lora_jobs/<job>/` as `coh peft export` copies it out:
 * `base_model.ref` (the parent model's id, on its first non-blank line), `policy.toml` (the export
 * policy the Queen applied, TOML) and `telemetry.cbor` (the telemetry the job trains on). What
 * `models import --from-export DIR` records of it: the job id (the folder's name, unless
 * `policy.toml` names one as `job_id`), the parent, the SHA-256 of `policy.toml` and of
 * `telemetry.cbor`, and the telemetry window: `policy.toml`'s `[window] start_ms`/`end_ms` when
 * it states one, else the span of the `time_window`s of the records in `telemetry.cbor` (a
 * `gpu-telemetry-bundle/v1` map with `records`, an array of records, or a sequence of them).
 */
import { basename, join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { cbor } from "../util/cbor.ts";
import { errorText } from "../util/error-text.ts";
import { readCapped } from "../util/files.ts";
import { sha256Hex } from "../util/sha256.ts";
import { ImportError } from "./errors.ts";

export const EXPORT_FILES = { base: "base_model.ref", policy: "policy.toml", telemetry: "telemetry.cbor" } as const;

/** Caps on what is read whole (the Queen's own are smaller). */
const CAPS = { base: 4096, policy: 64 * 1024, telemetry: 64 * 1024 * 1024 } as const;

/** What an import records of an export bundle. */
export interface ExportBundle {
  readonly jobId: string;
  readonly baseModel: string;
  readonly policySha256: string;
  readonly telemetrySha256: string;
  readonly window: { readonly start_ms: number; readonly end_ms: number } | null;
}

/** Reads the bundle at `dir`; an ImportError names the file and what is wrong with it. */
export function readExportBundle(dir: string): ExportBundle {
  const read = (key: keyof typeof EXPORT_FILES): Uint8Array => {
    const path = join(dir, EXPORT_FILES[key]);
    let bytes: Uint8Array | null;
    try {
      bytes = readCapped(path, CAPS[key]);
    } catch (error) {
      const missing = (error as { code?: string }).code === "ENOENT";
      throw new ImportError(
        missing
          ? `Cannot import from the export ${dir}: it has no ${EXPORT_FILES[key]} (an export holds ${
            Object.values(EXPORT_FILES).join(", ")
          })`
          : `Cannot import from the export ${dir}: cannot read ${EXPORT_FILES[key]}: ${errorText(error)}`,
        { cause: error },
      );
    }
    if (bytes === null) throw new ImportError(`Cannot import from the export ${dir}: ${EXPORT_FILES[key]} is over ${CAPS[key]} bytes`);
    if (bytes.length === 0) throw new ImportError(`Cannot import from the export ${dir}: ${EXPORT_FILES[key]} is empty`);
    return bytes;
  };
  const utf8 = (key: "base" | "policy", bytes: Uint8Array): string => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new ImportError(`Cannot import from the export ${dir}: ${EXPORT_FILES[key]} is not UTF-8`);
    }
  };
  const baseModel = utf8("base", read("base")).split("\n").map((l) => l.trim()).find((l) => l !== "");
  if (baseModel === undefined) throw new ImportError(`Cannot import from the export ${dir}: ${EXPORT_FILES.base} names no model`);
  const policyBytes = read("policy");
  let policy: Record<string, unknown>;
  try {
    policy = parseToml(utf8("policy", policyBytes)) as Record<string, unknown>;
  } catch (error) {
    throw new ImportError(
      `Cannot import from the export ${dir}: ${EXPORT_FILES.policy} is not valid TOML (${(error as Error).message.split("\n")[0]})`,
    );
  }
  const telemetry = read("telemetry");
  const jobId = typeof policy.job_id === "string" && policy.job_id !== "" ? policy.job_id : basename(resolve(dir));
  return {
    jobId,
    baseModel,
    policySha256: sha256Hex(policyBytes),
    telemetrySha256: sha256Hex(telemetry),
    window: policyWindow(policy) ?? telemetryWindow(telemetry),
  };
}

type Window = { start_ms: number; end_ms: number };

const isWindow = (w: unknown): w is Window => {
  const t = w as { start_ms?: unknown; end_ms?: unknown } | null;
  return typeof t === "object" && t !== null && Number.isSafeInteger(t.start_ms) && Number.isSafeInteger(t.end_ms) &&
    (t.start_ms as number) <= (t.end_ms as number);
};

function policyWindow(policy: Record<string, unknown>): Window | null {
  const w = policy.window;
  return isWindow(w) ? { start_ms: w.start_ms, end_ms: w.end_ms } : null;
}

/** The span of the records' windows; null when the bytes hold no record with one. */
export function telemetryWindow(bytes: Uint8Array): Window | null {
  let items: unknown[];
  try {
    items = cbor.decodeMultiple(bytes) as unknown[];
  } catch {
    return null;
  }
  const records = items.flatMap((item) => {
    if (Array.isArray(item)) return item;
    const r = (item as { records?: unknown } | null)?.records;
    return Array.isArray(r) ? r : [item];
  });
  let span: Window | null = null;
  for (const r of records) {
    const w = (r as { time_window?: unknown } | null)?.time_window;
    if (!isWindow(w)) continue;
    span = span === null
      ? { start_ms: w.start_ms, end_ms: w.end_ms }
      : { start_ms: Math.min(span.start_ms, w.start_ms), end_ms: Math.max(span.end_ms, w.end_ms) };
  }
  return span;
}
