/**
 * The `gpu-telemetry/v1` descriptor (docs/protocol.md#3-telemetry-records). The field lists drive both the
 * descriptor text and record encoding, so they cannot drift apart.
 */

export const TELEMETRY_SCHEMA_VERSION = "gpu-telemetry/v1";
export const MAX_RECORD_BYTES = 4096;
export const REQUIRED_FIELDS = [
  "schema_version",
  "device_id",
  "model_id",
  "time_window",
  "token_count",
  "latency_histogram",
] as const;
export const OPTIONAL_FIELDS = ["lora_id", "confidence", "entropy", "drift", "feedback_flags"] as const;

/** The descriptor as one line of compact JSON (247 bytes), exactly as the reference prints it. */
export const TELEMETRY_DESCRIPTOR: string = JSON.stringify({
  schema_version: TELEMETRY_SCHEMA_VERSION,
  max_record_bytes: MAX_RECORD_BYTES,
  required_fields: REQUIRED_FIELDS,
  optional_fields: OPTIONAL_FIELDS,
});
