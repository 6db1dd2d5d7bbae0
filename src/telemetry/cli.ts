/**
 * `telemetry push FILE`: validates NDJSON records and posts them, in batches, to the running
 * daemon's API (the daemon owns the spool; two writers would not be crash-safe).
 * `telemetry export --out FILE [--since T]`: the spooled records as one CBOR bundle, read
 * without touching the spool, written atomically.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { replaceFileDurably } from "../util/files.ts";
import { stateDirError } from "../util/state-dir.ts";
import type { Logger } from "../util/log.ts";
import { encodeCbor } from "../util/cbor.ts";
import { acceptRecord, type TelemetryRecord } from "./record.ts";
import { Spool } from "./spool.ts";

export const BUNDLE_SCHEMA = "gpu-telemetry-bundle/v1";
const BATCH = 256;

export interface PushOptions {
  readonly file: string;
  readonly url: string;
  readonly token: string;
  /** Where the token came from, for a refusal: "--api-token", "GPU_BRIDGE_API_TOKEN" or the file's path. */
  readonly tokenFrom?: string;
}

/** At most this many bad lines are listed one by one; the rest are counted. */
export const BAD_LINES_SHOWN = 100;

/** Every line of `text` that is not a record the bridge would take, as `FILE:N: field: why`. */
export function badLines(file: string, lines: readonly { l: string; n: number }[]): string[] {
  const bad: string[] = [];
  for (const { l, n } of lines) {
    let raw: unknown;
    try {
      raw = JSON.parse(l);
    } catch (error) {
      bad.push(`${file}:${n}: not valid JSON (${(error as Error).message})`);
      continue;
    }
    const r = acceptRecord(raw, { model_id: "(filled by the bridge)" });
    if (!r.ok) bad.push(`${file}:${n}: ${r.field}: ${r.message}`);
  }
  return bad;
}

/** Pushes an NDJSON file (or `-` for stdin); resolves with the number of records accepted. */
export async function pushTelemetry(o: PushOptions, log: Logger): Promise<number> {
  const text = o.file === "-" ? await new Response(stdinStream()).text() : readRecordsFile(o.file);
  const lines = text.split("\n").map((l, i) => ({ l, n: i + 1 })).filter(({ l }) => l.trim() !== "");
  // Checked here first, so an error names the file's lines rather than a batch index, and
  // every bad line at once rather than one per try. Nothing is sent while any line is bad.
  const bad = badLines(o.file, lines);
  if (bad.length > 0) {
    const more = bad.length > BAD_LINES_SHOWN ? [`... and ${bad.length - BAD_LINES_SHOWN} more bad lines`] : [];
    throw new Error(
      `Cannot push ${o.file}: ${bad.length} of ${lines.length} lines are not telemetry records the bridge takes; nothing was sent:\n  ` +
        [...bad.slice(0, BAD_LINES_SHOWN), ...more].join("\n  "),
    );
  }
  let accepted = 0;
  for (let i = 0; i < lines.length; i += BATCH) {
    const body = lines.slice(i, i + BATCH).map(({ l }) => l).join("\n") + "\n";
    let res: Response;
    try {
      res = await fetch(`${o.url.replace(/\/+$/, "")}/v1/telemetry`, {
        method: "POST",
        headers: { Authorization: `Bearer ${o.token}`, "content-type": "application/x-ndjson" },
        body,
      });
    } catch (error) {
      throw new Error(
        `Cannot reach the bridge at ${o.url}: ${(error as Error).message}; is 'gpu-bridge-host serve' (or make run) running?`,
      );
    }
    const reply = (await res.json().catch(() => ({}))) as { accepted?: number; error?: { message: string } };
    if (res.status === 401) {
      throw new Error(
        `The bridge at ${o.url} refused the API token from ${o.tokenFrom ?? "--api-token"} (HTTP 401): it is not that bridge's token. ` +
          "Point --state-dir at the state folder of the bridge listening there (make run's is .state), or pass --api-token",
      );
    }
    if (res.status !== 202) {
      throw new Error(
        `The bridge refused lines ${lines[i]!.n}-${lines[Math.min(i + BATCH, lines.length) - 1]!.n} (HTTP ${res.status}): ${
          reply.error?.message ?? "no detail"
        }`,
      );
    }
    accepted += reply.accepted ?? 0;
  }
  log.info(`pushed ${accepted} records from ${o.file}`);
  return accepted;
}

/** The records file named on the command line, or an error naming it and what is wrong. */
function readRecordsFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === "ENOENT"
      ? "no such file"
      : code === "EACCES"
      ? "permission denied"
      : code === "EISDIR"
      ? "it is a folder, not a file of NDJSON records"
      : (error as Error).message;
    throw new Error(`Cannot read the telemetry file ${JSON.stringify(file)} (telemetry push FILE): ${why}`, { cause: error });
  }
}

function stdinStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      for await (const chunk of process.stdin) controller.enqueue(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
      controller.close();
    },
  });
}

export interface ExportOptions {
  readonly stateDir: string;
  readonly out: string;
  /** Only records whose window ends at or after this (epoch ms). */
  readonly sinceMs?: number;
}

/** Writes the bundle; resolves with the number of records in it. */
export function exportTelemetry(o: ExportOptions, log: Logger): number {
  const dir = join(o.stateDir, "telemetry");
  // Exporting "0 records" from the wrong folder would look like success.
  if (!existsSync(dir)) {
    throw new Error(
      `Cannot export: ${o.stateDir} holds no telemetry spool (${dir} does not exist); ` +
        `pass --state-dir with the bridge's state folder (make run's is .state; the service's /var/lib/gpu-bridge-host)`,
    );
  }
  let spool: Spool;
  try {
    spool = Spool.open({ dir, log, readOnly: true });
  } catch (error) {
    throw stateDirError(o.stateDir, error) ?? error;
  }
  const records: TelemetryRecord[] = [];
  for (const r of spool.records()) {
    const rec = r as TelemetryRecord;
    if (o.sinceMs === undefined || rec.time_window.end_ms >= o.sinceMs) records.push(rec);
  }
  const bundle = {
    schema: BUNDLE_SCHEMA,
    created_at: new Date().toISOString(),
    ...(o.sinceMs !== undefined && { since_ms: o.sinceMs }),
    count: records.length,
    records,
  };
  // Whole or not at all: on a full disk the old file (if any) stays and the command fails.
  replaceFileDurably(o.out, encodeCbor(bundle), 0o644);
  // The spool's folder is named, so an export from the wrong bridge's folder is seen for what it is.
  log.info(`exported ${records.length} records from ${dir} to ${o.out}`);
  return records.length;
}
