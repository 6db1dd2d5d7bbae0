/**
 * What the Cohesix Queen serves under `/queen` (docs/protocol.md#10-queen-telemetry), as read off
 * its root task: the telemetry ingest's limits, what one `CAT` can carry, how binary files travel
 * over the text console, and the LoRA export bundle `coh peft export` pulls. Pure: the forwarder,
 * `peft export` and the mock console all read these facts from here.
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { byteLength } from "../util/bytes.ts";

/** The ingest's per-device quotas and what happens past them (the root task's defaults). */
export interface IngestQuota {
  maxSegments: number;
  segmentBytes: number;
  totalBytes: number;
  policy: "refuse" | "evict-oldest";
}

export const QUEEN = Object.freeze({
  telemetryRoot: "/queen/telemetry",
  /** The root task's generated defaults (`TELEMETRY_INGEST_CONFIG`). */
  ingest: Object.freeze<IngestQuota>({ maxSegments: 4, segmentBytes: 32 * 1024, totalBytes: 128 * 1024, policy: "evict-oldest" }),
  /** One append, its newline included (`TELEMETRY_INGEST_RECORD_MAX_BYTES`). */
  recordBytes: 4096,
  /** Lines one `CAT` or `LS` answers at most: past them the console refuses the read (buffer-full). */
  catLines: 64,
  /** Bytes of one of those lines, at most. */
  catLineBytes: 256,
  exportRoot: "/queen/export/lora_jobs",
  /** The three files of a job, in the order `coh peft export` pulls them. */
  exportFiles: Object.freeze(["telemetry.cbor", "base_model.ref", "policy.toml"] as const),
  /** `coh`'s policy bounds on each (`coh.peft.export.max_*_bytes`). */
  exportMaxBytes: Object.freeze({ "telemetry.cbor": 131072, "base_model.ref": 1024, "policy.toml": 8192 }),
});

export type ExportFile = (typeof QUEEN.exportFiles)[number];

/** The schema of each frame of `telemetry.cbor` (Cohesix's "Telemetry CBOR Frame v1"). */
export const TELEMETRY_FRAME_SCHEMA = "telemetry-frame/v1";

/** The segment-push envelope `cohsh telemetry push` and the bridge write, one per append. */
export const PUSH_SCHEMA = "cohsh-telemetry-push/v1";

/**
 * A binary file as the console's `CAT` carries it: `b64:` lines of standard base64, one line
 * when it fits, else chunks of 252 characters (a line's 256 bytes less the prefix, rounded down
 * to a multiple of 4).
 */
export function binaryLines(bytes: Uint8Array): string[] {
  const text = encodeBase64(bytes);
  const chunk = Math.floor((QUEEN.catLineBytes - 4) / 4) * 4;
  if (text.length + 4 <= QUEEN.catLineBytes) return [`b64:${text}`];
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += chunk) lines.push(`b64:${text.slice(i, i + chunk)}`);
  return lines;
}

/** The bytes `binaryLines` carried, or why they cannot be read back. */
export function fromBinaryLines(lines: readonly string[]): Uint8Array | string {
  if (lines.length === 0) return "no b64: lines";
  let text = "";
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith("b64:")) return `line ${i + 1} does not start with b64:`;
    text += line.slice(4);
  }
  return decodeBase64(text) ?? "the b64: lines are not valid base64";
}

/** Why a read of `lines` is more than one `CAT` answers, or null when it fits. */
export function catProblem(lines: readonly string[]): string | null {
  if (lines.length > QUEEN.catLines) return `${lines.length} lines, over the ${QUEEN.catLines} one read answers`;
  const long = lines.findIndex((l) => byteLength(l) > QUEEN.catLineBytes);
  return long < 0 ? null : `line ${long + 1} is ${byteLength(lines[long]!)} bytes, over ${QUEEN.catLineBytes}`;
}

/**
 * How many of a segment's lines count: the leading run of push envelopes numbered 1, 2, 3, …
 * (from `firstSeq` when reading on from the middle of a segment).
 * The Queen appends whatever it is sent, so a chunk resent after a lost ack, or one sent behind
 * a refused one, breaks the run; what follows the break is not the sender's stream and is not
 * read. The forwarder resumes a segment only when every line is in the run.
 */
export function envelopeRun(lines: readonly string[], firstSeq = 1): { count: number; payloads: string[]; mimes: string[] } {
  const payloads: string[] = [];
  const mimes: string[] = [];
  for (const line of lines) {
    let env: unknown;
    try {
      env = JSON.parse(line);
    } catch {
      break;
    }
    const e = env as { schema?: unknown; seq?: unknown; mime?: unknown; payload?: unknown };
    if (typeof env !== "object" || env === null || e.schema !== PUSH_SCHEMA || e.seq !== firstSeq + payloads.length) break;
    if (typeof e.payload !== "string" || typeof e.mime !== "string") break;
    payloads.push(e.payload);
    mimes.push(e.mime);
  }
  return { count: payloads.length, payloads, mimes };
}
