import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { parse as parseToml } from "smol-toml";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/main.ts";
import { importModel } from "../../src/models/import.ts";
import { ImportError } from "../../src/models/errors.ts";
import { manifestSha256, withApproval } from "../../src/models/manifest.ts";
import { verifyModel } from "../../src/models/verify.ts";
import { encodeCbor } from "../../src/util/cbor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { memoryStdio, tempDir } from "../helpers.ts";

let tmp: { path: string; cleanup: () => void };
beforeEach(() => (tmp = tempDir("gbh-prov-")));
afterEach(() => tmp.cleanup());

/** A registry whose base model lists one local file, with that file. */
function registry(): string {
  const reg = join(tmp.path, "registry");
  const base = join(reg, "available", "base-v1");
  mkdirSync(base, { recursive: true });
  const weights = new Uint8Array(1000).fill(3);
  writeFileSync(join(base, "weights.gguf"), weights);
  writeFileSync(
    join(base, "manifest.toml"),
    `[model]\nid = "base-v1"\nformat = "gguf"\n\n[artifacts."weights.gguf"]\nsha256 = "${sha256Hex(weights)}"\nbytes = 1000\n`,
  );
  writeFileSync(join(reg, "active"), "base-v1\n");
  return reg;
}

function bundle(lora: Record<string, unknown> = { base_model: "base-v1" }): string {
  const dir = join(tmp.path, "bundle");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter.safetensors"), new Uint8Array(2048).fill(9));
  writeFileSync(join(dir, "lora.json"), JSON.stringify(lora));
  return dir;
}

/** A Queen export bundle as `coh peft export` copies it out. */
function exportDir(job = "job-0007", policy = "min_records = 3\n", records = [[1000, 1999], [5000, 5999]]): string {
  const dir = join(tmp.path, "export", job);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "base_model.ref"), "\nbase-v1\n");
  writeFileSync(join(dir, "policy.toml"), policy);
  writeFileSync(
    join(dir, "telemetry.cbor"),
    encodeCbor({
      schema: "gpu-telemetry-bundle/v1",
      records: records.map(([s, e]) => ({ schema_version: "gpu-telemetry/v1", time_window: { start_ms: s, end_ms: e } })),
    }),
  );
  return dir;
}

const failed = (id: string, reg: string) => verifyModel(reg, id).findings.filter((f) => !f.ok).map((f) => `${f.model_id}: ${f.subject}`);

describe("provenance", () => {
  test("an import records the parent's manifest hash, and verify follows the chain to the base", () => {
    const reg = registry();
    const manifest = parseToml(importModel({ bundle: bundle(), id: "lora-v1", registry: reg })) as Record<string, Record<string, unknown>>;
    const parentText = readFileSync(join(reg, "available", "base-v1", "manifest.toml"), "utf8");
    expect(manifest.provenance).toEqual({ parent_sha256: sha256Hex(parentText) });
    const report = verifyModel(reg, "lora-v1");
    expect(report.ok).toBe(true);
    expect(report.chain).toEqual(["lora-v1", "base-v1"]);
    expect(report.findings.map((f) => `${f.model_id}: ${f.subject}`)).toEqual([
      "lora-v1: adapter.safetensors",
      "lora-v1: lora.json",
      "base-v1: manifest",
      "base-v1: weights.gguf",
    ]);
  });

  test("a changed byte in the parent's file breaks the chain; so does an edit of the parent's manifest", () => {
    const reg = registry();
    importModel({ bundle: bundle(), id: "lora-v1", registry: reg });
    const weights = join(reg, "available", "base-v1", "weights.gguf");
    const bytes = readFileSync(weights);
    bytes[500] = bytes[500]! ^ 1;
    writeFileSync(weights, bytes);
    expect(failed("lora-v1", reg)).toEqual(["base-v1: weights.gguf"]);
    expect(verifyModel(reg, "lora-v1").findings.find((f) => !f.ok)!.detail).toContain(`its SHA-256 is ${sha256Hex(bytes)}`);
    bytes[500] = bytes[500]! ^ 1;
    writeFileSync(weights, bytes);
    expect(failed("lora-v1", reg)).toEqual([]);
    // Re-listing the changed file's hash in the parent's manifest hides it from the parent's own
    // check, but not from the child's: the manifest is not the one the child was imported on.
    appendFileSync(join(reg, "available", "base-v1", "manifest.toml"), "# edited\n");
    expect(failed("lora-v1", reg)).toEqual(["base-v1: manifest"]);
  });

  test("the adapter's own file changed, missing, or a size that differs", () => {
    const reg = registry();
    importModel({ bundle: bundle(), id: "lora-v1", registry: reg });
    const adapter = join(reg, "available", "lora-v1", "adapter.safetensors");
    writeFileSync(adapter, new Uint8Array(2048).fill(8));
    expect(failed("lora-v1", reg)).toEqual(["lora-v1: adapter.safetensors"]);
    writeFileSync(adapter, new Uint8Array(2049).fill(9));
    expect(failed("lora-v1", reg)).toEqual(["lora-v1: adapter.safetensors"]);
    writeFileSync(join(reg, "available", "lora-v1", "lora.json"), "{}");
    expect(failed("lora-v1", reg)).toEqual(["lora-v1: adapter.safetensors", "lora-v1: lora.json"]);
  });

  test("approving the parent rewrites its manifest without changing its hash: the child's chain holds", () => {
    const reg = registry();
    importModel({ bundle: bundle(), id: "lora-v1", registry: reg });
    const path = join(reg, "available", "base-v1", "manifest.toml");
    const before = readFileSync(path, "utf8");
    const after = withApproval(before, { status: "rejected", reason: "drifted", at: "2026-12-06T00:00:00.000Z" });
    writeFileSync(path, after);
    expect(manifestSha256(after)).toBe(manifestSha256(before));
    expect(parseToml(after)).toMatchObject({ approval: { status: "rejected", reason: "drifted" } });
    expect(verifyModel(reg, "lora-v1").ok).toBe(true);
    // An approval rewritten twice is one table, not two.
    const twice = withApproval(after, { status: "approved", reason: "fixed" });
    expect(parseToml(twice)).toMatchObject({ approval: { status: "approved", reason: "fixed" } });
    expect(manifestSha256(twice)).toBe(manifestSha256(before));
  });

  test("an adapter that records no parent hash, or whose parent is gone, does not verify", () => {
    const reg = registry();
    const dir = join(reg, "available", "old-lora");
    mkdirSync(dir);
    writeFileSync(join(dir, "adapter.safetensors"), "w");
    writeFileSync(
      join(dir, "manifest.toml"),
      `[model]\nid = "old-lora"\nbase = "base-v1"\n\n[artifacts."adapter.safetensors"]\nsha256 = "${sha256Hex("w")}"\nbytes = 1\n`,
    );
    expect(failed("old-lora", reg)).toEqual(["old-lora: parent"]);
    importModel({ bundle: bundle(), id: "lora-v1", registry: reg });

    rmSync(join(reg, "available", "base-v1"), { recursive: true });
    expect(failed("lora-v1", reg)).toEqual(["base-v1: manifest"]);
  });

  test("--from-export records the export's parent, job, window and files' hashes", () => {
    const reg = registry();
    const exp = exportDir();
    const manifest = parseToml(importModel({ bundle: bundle({}), id: "lora-x", registry: reg, fromExport: exp })) as Record<
      string,
      Record<string, unknown>
    >;
    expect(manifest.model).toMatchObject({ base: "base-v1" });
    expect(manifest.training).toEqual({ job_id: "job-0007", telemetry_window_start_ms: 1000, telemetry_window_end_ms: 5999 });
    expect(manifest.provenance).toEqual({
      parent_sha256: manifestSha256(readFileSync(join(reg, "available", "base-v1", "manifest.toml"), "utf8")),
      export_job_id: "job-0007",
      export_policy_sha256: sha256Hex(readFileSync(join(exp, "policy.toml"))),
      export_telemetry_sha256: sha256Hex(readFileSync(join(exp, "telemetry.cbor"))),
    });
    expect(verifyModel(reg, "lora-x").ok).toBe(true);
  });

  test("--from-export: policy.toml's job_id and [window] win; a missing file or a conflicting --parent is refused", () => {
    const reg = registry();
    const exp = exportDir("j9", 'job_id = "queen-job-9"\n[window]\nstart_ms = 10\nend_ms = 20\n');
    const m = parseToml(importModel({ bundle: bundle({}), id: "a", registry: reg, fromExport: exp })) as Record<
      string,
      Record<string, unknown>
    >;
    expect(m.training).toEqual({ job_id: "queen-job-9", telemetry_window_start_ms: 10, telemetry_window_end_ms: 20 });
    expect(() => importModel({ bundle: bundle({}), id: "b", registry: reg, fromExport: exp, parent: "other" })).toThrow(
      /--parent "other" differs from the export's base_model.ref "base-v1"/,
    );

    rmSync(join(exp, "policy.toml"));
    expect(() => importModel({ bundle: bundle({}), id: "c", registry: reg, fromExport: exp })).toThrow(ImportError);
    expect(() => importModel({ bundle: bundle({}), id: "c", registry: reg, fromExport: exp })).toThrow(/it has no policy.toml/);
    writeFileSync(join(exp, "policy.toml"), "not = [toml");
    expect(() => importModel({ bundle: bundle({}), id: "c", registry: reg, fromExport: exp })).toThrow(/policy.toml is not valid TOML/);
  });
});

describe("gpu-bridge-host models verify", () => {
  test("prints every check and exits 0; 1 naming what differs; the active model by default", async () => {
    const reg = registry();
    importModel({ bundle: bundle(), id: "lora-v1", registry: reg, approval: "approved" });
    const ok = memoryStdio();
    expect(await main(["models", "verify", "lora-v1", "--registry", reg], {}, ok.io)).toBe(0);
    expect(ok.out.join("")).toContain("lora-v1: verified (lora-v1 -> base-v1)");
    expect(ok.out.join("")).toMatch(/^ok +lora-v1: adapter\.safetensors: matches/m);
    writeFileSync(join(reg, "available", "base-v1", "weights.gguf"), "changed");
    const bad = memoryStdio();
    expect(await main(["models", "verify", "lora-v1", "--registry", reg], {}, bad.io)).toBe(1);
    expect(bad.out.join("")).toMatch(/^DIFFERS base-v1: weights\.gguf: its SHA-256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/m);
    expect(bad.out.join("")).toContain("lora-v1: 1 difference (lora-v1 -> base-v1)");
    // No id: the registry's active model (base-v1), whose file was changed.
    const active = memoryStdio();
    expect(await main(["models", "verify", "--registry", reg, "--json"], {}, active.io)).toBe(1);
    expect(JSON.parse(active.out.join(""))).toMatchObject({ model_id: "base-v1", ok: false, chain: ["base-v1"] });
  });
});
