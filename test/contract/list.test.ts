import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { renderList } from "../../src/contract/list.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { TELEMETRY_DESCRIPTOR } from "../../src/contract/telemetry-schema.ts";
import { FIXTURE, REPO } from "../helpers.ts";

describe("renderList()", () => {
  test("reproduces the reference's --mock --list bytes", () => {
    const out = renderList(buildNamespace(MOCK_GPUS, builtinCatalog()));
    expect(Buffer.from(out)).toEqual(readFileSync(FIXTURE));
    expect(out.length).toBe(1592);
  });

  test("the repo's fixture copy equals the shared contract fixture", () => {
    const shared = join(REPO, "..", "shared", "spec", "fixtures", "mock-list.json");
    if (!existsSync(shared)) return; // the clone has no shared/ beside it; the copy stands alone
    expect(readFileSync(FIXTURE)).toEqual(readFileSync(shared));
  });

  test("an empty node or model list leaves an empty line between the brackets", () => {
    const out = renderList({ nodes: [], models: [], active: "", telemetrySchema: TELEMETRY_DESCRIPTOR });
    expect(out).toContain('"nodes": [\n\n  ],');
    expect(out).toContain('"available": [\n\n    ]');
  });

  test("escapes hostile names and manifests the reference's way", () => {
    const gpu = { ...MOCK_GPUS[0]!, name: 'Evil "GPU"\u0001 ü' };
    const out = renderList(
      buildNamespace([gpu], { source: "registry", active: "m", models: [{ model_id: "m", manifest_toml: "a\tb\\" }] }),
    );
    // Escaped twice: once inside the info payload, once as a string of the list.
    expect(out).toContain(String.raw`\"name\": \"Evil \\\"GPU\\\"\\u0001 ` + "ü" + String.raw`\",`);
    expect(out).toContain('"manifest_toml": "a\\tb\\\\"');
  });
});

describe("TELEMETRY_DESCRIPTOR", () => {
  test("is the contract's 247-byte line", () => {
    expect(TELEMETRY_DESCRIPTOR).toBe(
      '{"schema_version":"gpu-telemetry/v1","max_record_bytes":4096,"required_fields":["schema_version","device_id","model_id","time_window","token_count","latency_histogram"],"optional_fields":["lora_id","confidence","entropy","drift","feedback_flags"]}',
    );
    expect(Buffer.byteLength(TELEMETRY_DESCRIPTOR)).toBe(247);
  });
});
