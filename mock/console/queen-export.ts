/**
 * The Queen's side of the LoRA loop in the mock console: it collects the `gpu-telemetry/v1`
 * records the Queen's reader takes from NDJSON and JSON segments (queen.ts), and an export policy (minimum
 * records of one base model within a time window) that writes `/queen/export/lora_jobs/<job>/`
 * with the three files `coh peft export` pulls: `telemetry.cbor` (a CBOR array of
 * `telemetry-frame/v1` maps), `base_model.ref` (one line) and `policy.toml`. A job's telemetry is
 * cut to what one console `CAT` can carry, so every job can be pulled over the console.
 */
import { encodeCbor } from "../../src/util/cbor.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { binaryLines, catProblem, type ExportFile, QUEEN, TELEMETRY_FRAME_SCHEMA } from "../../src/contract/queen.ts";
import { catReply, refusal } from "./queen.ts";

/** When the Queen exports a job. */
export interface ExportPolicy {
  /** Records of one base model the window must hold. */
  minRecords: number;
  /** How far back records count, in milliseconds; older ones are dropped unexported. */
  windowMs: number;
}

export const DEFAULT_EXPORT_POLICY: Readonly<ExportPolicy> = Object.freeze({
  minRecords: DEFAULTS.exportMinRecords,
  windowMs: DEFAULTS.exportWindowS * 1000,
});

/** One exported job as `/queen/export/lora_jobs/<id>/` serves it. */
export interface ExportJob {
  readonly id: string;
  readonly baseModel: string;
  readonly records: number;
  readonly devices: readonly string[];
  readonly windowStartMs: number;
  readonly windowEndMs: number;
  readonly files: ReadonlyMap<ExportFile, Uint8Array>;
}

interface Held {
  readonly device: string;
  readonly record: Record<string, unknown>;
  readonly at: number;
  readonly frameBytes: number;
}

/** Raw bytes one `CAT` of `b64:` lines carries at most. */
const CAT_BINARY_BYTES = Math.floor((QUEEN.catLines * Math.floor((QUEEN.catLineBytes - 4) / 4) * 4) / 4) * 3;
const JOB = /^\/queen\/export\/lora_jobs\/([^/]+)(?:\/([^/]+))?$/;

export class QueenExport {
  policy: ExportPolicy = { ...DEFAULT_EXPORT_POLICY };
  readonly jobs = new Map<string, ExportJob>();
  /** Records taken from the ingest that were not gpu-telemetry/v1 (counted, not exported). */
  rejected = 0;
  onExport: (job: ExportJob) => void = () => {};
  readonly #now: () => number;
  #held: Held[] = [];
  #nextJob = 1;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** Records held now, waiting for the policy. */
  get holding(): number {
    return this.#held.length;
  }

  /** Takes one complete line the Queen's reader found (queen.ts): a record of an NDJSON or JSON segment. */
  take(device: string, mime: string, text: string): void {
    if (mime !== "application/x-ndjson" && mime !== "application/json") return;
    if (text.trim() === "") return;
    this.#hold(device, text);
    this.#check();
  }

  /** Whether `path` is under `/queen/export`. */
  handles(path: string): boolean {
    return path === "/queen/export" || path.startsWith("/queen/export/");
  }

  ls(path: string): string[] | null {
    if (path === "/queen/export") return ["lora_jobs"];
    if (path === QUEEN.exportRoot) return [...this.jobs.keys()].sort();
    const m = JOB.exec(path);
    return m !== null && m[2] === undefined && this.jobs.has(m[1]!) ? [...QUEEN.exportFiles] : null;
  }

  cat(path: string): string[] {
    const m = JOB.exec(path);
    const bytes = m?.[2] === undefined ? undefined : this.jobs.get(m[1]!)?.files.get(m[2] as ExportFile);
    if (bytes === undefined) return [refusal("CAT", path, "invalid-path")];
    const lines = m![2] === "telemetry.cbor" ? binaryLines(bytes) : new TextDecoder().decode(bytes).replace(/\n$/, "").split("\n");
    return catReply(path, lines);
  }

  #hold(device: string, text: string): void {
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      record = null;
    }
    const r = record as Record<string, unknown> | null;
    const window = r?.time_window as { end_ms?: unknown } | undefined;
    if (
      typeof r !== "object" || r === null || r.schema_version !== "gpu-telemetry/v1" || typeof r.model_id !== "string" ||
      typeof window?.end_ms !== "number"
    ) {
      this.rejected++;
      return;
    }
    const frameBytes = encodeCbor(frame(device, 1, r)).length;
    this.#held.push({ device, record: r, at: this.#now(), frameBytes });
  }

  /** Drops what the window no longer holds, then exports every base model with enough records. */
  #check(): void {
    const since = this.#now() - this.policy.windowMs;
    this.#held = this.#held.filter((h) => h.at >= since);
    const models = new Set(this.#held.map((h) => h.record.model_id as string));
    for (const model of models) {
      const mine = this.#held.filter((h) => h.record.model_id === model);
      if (mine.length < this.policy.minRecords) continue;
      // As many of the oldest as one CAT carries (a frame's size bounds its share; 9 bytes: the
      // array's head and the larger seq numbers).
      const taken: Held[] = [];
      let bytes = 9;
      for (const h of mine) {
        if (taken.length > 0 && bytes + h.frameBytes + 8 > Math.min(CAT_BINARY_BYTES, QUEEN.exportMaxBytes["telemetry.cbor"])) break;
        taken.push(h);
        bytes += h.frameBytes + 8;
      }
      this.#held = this.#held.filter((h) => !taken.includes(h));
      this.#export(model, taken);
    }
  }

  #export(model: string, taken: readonly Held[]): void {
    const id = `job_${String(this.#nextJob++).padStart(4, "0")}`;
    const telemetry = encodeCbor(taken.map((h, i) => frame(h.device, i + 1, h.record)));
    const windows = taken.map((h) => h.record.time_window as { start_ms: number; end_ms: number });
    const start = Math.min(...windows.map((w) => w.start_ms));
    const end = Math.max(...windows.map((w) => w.end_ms));
    const devices = [...new Set(taken.map((h) => h.device))].sort();
    const policy = [
      `job_id = ${JSON.stringify(id)}`,
      `base_model = ${JSON.stringify(model)}`,
      `created_ms = ${this.#now()}`,
      "",
      "[policy]",
      `name = "mock-queen"`,
      `min_records = ${this.policy.minRecords}`,
      `window_s = ${Math.round(this.policy.windowMs / 1000)}`,
      "",
      "[window]",
      `start_ms = ${start}`,
      `end_ms = ${end}`,
      "",
      "[telemetry]",
      `devices = [${devices.map((d) => JSON.stringify(d)).join(", ")}]`,
      `records = ${taken.length}`,
      `sha256 = "${sha256Hex(telemetry)}"`,
      `bytes = ${telemetry.length}`,
      "",
    ].join("\n");
    const enc = new TextEncoder();
    const files = new Map<ExportFile, Uint8Array>([
      ["telemetry.cbor", telemetry],
      ["base_model.ref", enc.encode(model + "\n")],
      ["policy.toml", enc.encode(policy)],
    ]);
    if (catProblem(binaryLines(telemetry)) !== null) throw new Error(`mock Queen: job ${id}'s telemetry does not fit one CAT`);
    const job: ExportJob = { id, baseModel: model, records: taken.length, devices, windowStartMs: start, windowEndMs: end, files };
    this.jobs.set(id, job);
    this.onExport(job);
  }
}

/** One `telemetry-frame/v1` map: the device as the worker, the record as the payload. */
function frame(device: string, seq: number, record: Record<string, unknown>): Record<string, unknown> {
  const window = record.time_window as { end_ms: number };
  return { schema: TELEMETRY_FRAME_SCHEMA, worker_id: device, role: "worker-gpu", seq, emitted_ms: window.end_ms, payload: record };
}
