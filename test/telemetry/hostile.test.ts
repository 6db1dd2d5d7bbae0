import { describe, expect, test } from "bun:test";
import { acceptRecord } from "../../src/telemetry/record.ts";
import { parseTelemetryBody, TelemetryError } from "../../src/telemetry/ingest.ts";
import { encodeCbor } from "../../src/util/cbor.ts";
import { checkCbor, checkJson } from "../../src/util/strict-input.ts";
import { record } from "./helpers.ts";

const refused = (f: () => unknown, text: string) => {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TelemetryError);
  expect((err as Error).message).toContain(text);
};

describe("what a telemetry body may cost in memory is bounded", () => {
  test("a 1 MiB CBOR array of empty maps is refused before it is decoded", () => {
    const body = new Uint8Array(1 << 20).fill(0xa0);
    body.set([0x9a, 0x00, 0x0f, 0xff, 0xfb], 0); // array of 1,048,571 items
    const t0 = performance.now();
    refused(() => parseTelemetryBody("application/cbor", body), "more than 65536 maps and arrays");
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("an indefinite-length CBOR array of empty maps is refused too", () => {
    const body = new Uint8Array(300_000).fill(0xa0);
    body[0] = 0x9f;
    body[body.length - 1] = 0xff;
    refused(() => parseTelemetryBody("application/cbor", body), "more than 65536 maps and arrays");
  });

  test("a JSON array of 70,000 empty objects is refused", () => {
    refused(() => parseTelemetryBody("application/json", new TextEncoder().encode(`[${"{},".repeat(69_999)}{}]`)), "more than 65536");
  });

  test("an ordinary batch of 1,000 records (CBOR and JSON) is accepted", () => {
    const batch = Array.from({ length: 1000 }, (_, i) => record(i));
    expect(parseTelemetryBody("application/cbor", encodeCbor(batch)).length).toBe(1000);
    expect(parseTelemetryBody("application/json", new TextEncoder().encode(JSON.stringify(batch))).length).toBe(1000);
    expect(() => checkCbor(encodeCbor({ a: [1, 2, { b: "x" }] }))).not.toThrow();
  });
});

describe("duplicate JSON keys are refused, never resolved to the last", () => {
  test("in a JSON telemetry body, in NDJSON, and nested", () => {
    const dup = '{"schema_version":"gpu-telemetry/v1","token_count":1,"token_count":2}';
    refused(() => parseTelemetryBody("application/json", new TextEncoder().encode(dup)), 'duplicate key "token_count"');
    refused(() => parseTelemetryBody("application/x-ndjson", new TextEncoder().encode(`{"a":1}\n${dup}\n`)), "duplicate key");
    expect(() => checkJson('{"t":{"a":1,"\\u0061":2}}')).toThrow('duplicate key "a"');
  });

  test("the same key in sibling objects, and keys that only look alike, are fine", () => {
    expect(() => checkJson('[{"a":1},{"a":2},{"x":{"a":1},"a":"\\"a\\":"}]')).not.toThrow();
    expect(() => checkJson('{"a\\\\":1,"a":2}')).not.toThrow();
  });
});

describe("telemetry values a record cannot hold are refused", () => {
  const rejects = (extra: Record<string, unknown>, field: string) => {
    const r = acceptRecord(record(1, extra), { model_id: "m" });
    expect(r.ok).toBe(false);
    expect((r as { field: string }).field).toBe(field);
  };
  test("token_count: 1e300 and other integers past 2^53 are refused", () => {
    rejects({ token_count: 1e300 }, "token_count");
    rejects({ time_window: { start_ms: 0, end_ms: 2 ** 60 } }, "time_window.end_ms");
  });
  test("control and bidi characters in ids and flags are refused", () => {
    rejects({ device_id: "edge\u0007" }, "device_id");
    rejects({ model_id: "m\u202Eevil" }, "model_id");
    rejects({ lora_id: "l\n2" }, "lora_id");
    rejects({ feedback_flags: ["ok", "\u001b[31m"] }, "feedback_flags.1");
    expect(acceptRecord(record(1, { feedback_flags: ["ünïcode ✓"] }), { model_id: "m" }).ok).toBe(true);
  });
});
