/**
 * `gpu-telemetry/v1` records (docs/protocol.md#3-telemetry-records): validated with valibot, completed from the
 * active model, and encoded canonically: compact JSON, required fields first then the optional
 * ones present, in the descriptor's order; `confidence` and `entropy` with six decimals; at
 * most 4096 bytes. The contract fixes the field names, not every shape; ours are:
 *   time_window        {"start_ms": <epoch ms>, "end_ms": <epoch ms >= start_ms>}
 *   latency_histogram  {"le_ms": [increasing bounds], "counts": [one count per bound]}
 */
import * as v from "valibot";
import { parse as parseToml } from "smol-toml";
import { quote } from "../contract/escape.ts";
import { describeIssue } from "../util/issues.ts";
import { MAX_RECORD_BYTES, OPTIONAL_FIELDS, REQUIRED_FIELDS, TELEMETRY_SCHEMA_VERSION } from "../contract/telemetry-schema.ts";
import { byteLength } from "../util/bytes.ts";

// deno-lint-ignore no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const text = (field: string, max = 128) =>
  v.pipe(
    v.string(`${field} must be a string`),
    v.minLength(1, `${field} must not be empty`),
    v.maxLength(max, `${field} must be at most ${max} characters`),
    v.check((s) => !UNSAFE_TEXT.test(s), `${field} must not contain control or bidirectional-override characters`),
  );
// Integers beyond 2^53 are not exact in JSON or in JavaScript: 1e300 is no token count.
const count = (field: string) =>
  v.pipe(
    v.number(`${field} must be a non-negative integer`),
    v.integer(`${field} must be a non-negative integer`),
    v.minValue(0, `${field} must be a non-negative integer`),
    v.maxValue(Number.MAX_SAFE_INTEGER, `${field} must be at most ${Number.MAX_SAFE_INTEGER}`),
  );
const finite = (field: string) => v.pipe(v.number(`${field} must be a number`), v.finite(`${field} must be a finite number`));

export const TelemetryRecordSchema = v.strictObject({
  schema_version: v.literal(TELEMETRY_SCHEMA_VERSION, `schema_version must be "${TELEMETRY_SCHEMA_VERSION}"`),
  device_id: text("device_id"),
  model_id: v.optional(text("model_id")),
  time_window: v.pipe(
    v.strictObject(
      { start_ms: count("time_window.start_ms"), end_ms: count("time_window.end_ms") },
      "time_window must be {start_ms, end_ms}",
    ),
    v.check((w) => w.end_ms >= w.start_ms, "time_window.end_ms must not be before start_ms"),
  ),
  token_count: count("token_count"),
  latency_histogram: v.pipe(
    v.strictObject(
      { le_ms: v.array(finite("latency_histogram.le_ms[]")), counts: v.array(count("latency_histogram.counts[]")) },
      "latency_histogram must be {le_ms, counts}",
    ),
    v.check((h) => h.le_ms.length === h.counts.length && h.le_ms.length > 0, "latency_histogram needs one count per bound, at least one"),
    v.check((h) => h.le_ms.every((b, i) => i === 0 || b > h.le_ms[i - 1]!), "latency_histogram.le_ms must increase"),
  ),
  lora_id: v.optional(text("lora_id")),
  confidence: v.optional(v.pipe(finite("confidence"), v.minValue(0, "confidence must be 0-1"), v.maxValue(1, "confidence must be 0-1"))),
  entropy: v.optional(v.pipe(finite("entropy"), v.minValue(0, "entropy must not be negative"))),
  drift: v.optional(finite("drift")),
  feedback_flags: v.optional(v.array(text("feedback_flags[]", 64), "feedback_flags must be an array of strings")),
});

/** A record as accepted: `model_id` always present. */
export type TelemetryRecord = v.InferOutput<typeof TelemetryRecordSchema> & { model_id: string };

/** Where `model_id` and `lora_id` come from when a record leaves them out. */
export interface ActiveModel {
  readonly model_id: string;
  readonly lora_id?: string;
}

export type RecordResult = { ok: true; record: TelemetryRecord; json: string } | { ok: false; field: string; message: string };

/** Validates one record, fills the model fields, and checks the encoded size. */
export function acceptRecord(raw: unknown, active: ActiveModel): RecordResult {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, field: "(record)", message: "a telemetry record must be a JSON object" };
  }
  const parsed = v.safeParse(TelemetryRecordSchema, raw);
  if (!parsed.success) return { ok: false, ...describeIssue(parsed.issues[0], "(record)") };
  const record = { ...parsed.output } as TelemetryRecord;
  if (record.model_id === undefined) {
    record.model_id = active.model_id;
    if (record.lora_id === undefined && active.lora_id !== undefined) record.lora_id = active.lora_id;
  }
  const json = encodeRecord(record);
  const bytes = byteLength(json);
  if (bytes > MAX_RECORD_BYTES) {
    return { ok: false, field: "(record)", message: `the record encodes to ${bytes} bytes, over the ${MAX_RECORD_BYTES}-byte limit` };
  }
  return { ok: true, record, json };
}

/** The canonical compact JSON of a record (docs/protocol.md#3-telemetry-records). */
export function encodeRecord(r: TelemetryRecord): string {
  const parts: string[] = [];
  const value = (field: string, x: unknown): string => {
    if (field === "confidence" || field === "entropy") return (x as number).toFixed(6);
    if (typeof x === "string") return quote(x);
    if (typeof x === "number") return JSON.stringify(x);
    if (Array.isArray(x)) return `[${x.map((e) => value("", e)).join(",")}]`;
    return `{${Object.entries(x as Record<string, unknown>).map(([k, e]) => `${quote(k)}:${value("", e)}`).join(",")}}`;
  };
  for (const field of [...REQUIRED_FIELDS, ...OPTIONAL_FIELDS]) {
    const x = (r as Record<string, unknown>)[field];
    if (x !== undefined) parts.push(`${quote(field)}:${value(field, x)}`);
  }
  return `{${parts.join(",")}}`;
}

/** The active model as telemetry sees it: for an adapter (a manifest whose `[model]` table has a
 *  `base`), the base is the model and the adapter the LoRA. A manifest that is not valid TOML is
 *  taken as a plain model (the registry publishes manifests verbatim, the VM does not parse them). */
export function activeModelOf(catalog: { active: string; models: readonly { model_id: string; manifest_toml: string }[] }): ActiveModel {
  const manifest = catalog.models.find((m) => m.model_id === catalog.active)?.manifest_toml ?? "";
  const base = baseOf(manifest);
  return base === undefined ? { model_id: catalog.active } : { model_id: base, lora_id: catalog.active };
}

/** The last manifest parsed: every ingest asks about the same active model. */
let lastBase: { manifest: string; base: string | undefined } | null = null;

function baseOf(manifest: string): string | undefined {
  if (lastBase?.manifest === manifest) return lastBase.base;
  let base: string | undefined;
  try {
    const model = parseToml(manifest).model;
    const b = typeof model === "object" && model !== null && !Array.isArray(model) ? (model as Record<string, unknown>).base : undefined;
    base = typeof b === "string" && b !== "" ? b : undefined;
  } catch {
    base = undefined;
  }
  lastBase = { manifest, base };
  return base;
}
