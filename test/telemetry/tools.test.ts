import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { parse as parseToml } from "smol-toml";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mockBackend } from "../../src/inventory/mock.ts";
import { startMockConsole } from "../../mock/console/server.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { startApi } from "../../src/app/daemon.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { ImportError, importModel } from "../../src/models/import.ts";
import { loadRegistry } from "../../src/models/registry.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { exportTelemetry } from "../../src/telemetry/cli.ts";
import { ingest } from "../../src/telemetry/ingest.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { decodeCbor, encodeCbor } from "../../src/util/cbor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { memoryLogger, REPO, tempDir, until } from "../helpers.ts";
import { record } from "./helpers.ts";

let tmp: { path: string; cleanup: () => void };
beforeEach(() => (tmp = tempDir("gbh-tools-")));
afterEach(() => tmp.cleanup());

function registry() {
  const reg = join(tmp.path, "registry");
  mkdirSync(join(reg, "available", "base-v1"), { recursive: true });
  writeFileSync(join(reg, "available", "base-v1", "manifest.toml"), '[model]\nid = "base-v1"\n');
  writeFileSync(join(reg, "active"), "base-v1\n");
  return reg;
}
function bundle(
  lora: Record<string, unknown> = { base_model: "base-v1", job_id: "train-42", telemetry_window: { start_ms: 1, end_ms: 2 } },
) {
  const dir = join(tmp.path, "bundle");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter.safetensors"), new Uint8Array(4096).fill(7));
  writeFileSync(join(dir, "lora.json"), JSON.stringify(lora));
  writeFileSync(join(dir, "metrics.json"), '{"loss":0.12}');
  return dir;
}

describe("models import", () => {
  test("stages the bundle with a manifest of parent, job, window, approval and hashes", () => {
    const reg = registry();
    const dir = bundle();
    const manifest = importModel({ bundle: dir, id: "lora-v2", registry: reg });
    const adapter = readFileSync(join(dir, "adapter.safetensors"));
    // Parsed, not compared as text: what a TOML reader (the Queen's, the VM's tools) gets.
    expect(parseToml(manifest)).toEqual({
      model: { id: "lora-v2", base: "base-v1", format: "safetensors+lora" },
      training: { job_id: "train-42", telemetry_window_start_ms: 1, telemetry_window_end_ms: 2 },
      provenance: { parent_sha256: sha256Hex(readFileSync(join(reg, "available", "base-v1", "manifest.toml"))) },
      approval: { status: "pending" },
      artifacts: {
        "adapter.safetensors": { sha256: sha256Hex(adapter), bytes: 4096 },
        "lora.json": { sha256: sha256Hex(readFileSync(join(dir, "lora.json"))), bytes: readFileSync(join(dir, "lora.json")).length },
        "metrics.json": { sha256: sha256Hex(readFileSync(join(dir, "metrics.json"))), bytes: 13 },
      },
    });
    expect(readFileSync(join(reg, "available", "lora-v2", "manifest.toml"), "utf8")).toBe(manifest);
    expect(existsSync(join(reg, "available", "lora-v2", "adapter.safetensors"))).toBe(true);
    expect(loadRegistry(reg).catalog.models.map((m) => m.model_id)).toEqual(["base-v1", "lora-v2"]);
  });

  test("strings with quotes, backslashes, CR, tabs and control characters stay valid TOML and round-trip", () => {
    const reg = registry();
    const jobId = 'a"b\\c\r\nd\te\u0001f\u007fg\u001b[0m ✓';
    const manifest = importModel({ bundle: bundle(), id: "lora-v3", registry: reg, jobId });
    expect((parseToml(manifest) as { training: { job_id: string } }).training.job_id).toBe(jobId);
  });

  test.each([
    ["an id the VM refuses", { id: "has space" }, "must not contain whitespace"],
    ["an id over 128 bytes", { id: "x".repeat(129) }, "must be 1-128 bytes, got 129"],
    ["a manifest over 8 KiB", { jobId: "j".repeat(9000) }, "the manifest would be"],
    ["an unknown parent", { parent: "nope" }, 'parent model "nope" is not in the registry'],
  ])("refuses %s up front", (_what, patch, message) => {
    const reg = registry();
    expect(() => importModel({ bundle: bundle(), id: "lora-v2", registry: reg, ...patch })).toThrow(message);
    expect(loadRegistry(reg).catalog.models.map((m) => m.model_id)).toEqual(["base-v1"]);
  });

  test("an unknown parent is refused into an empty registry too, every time, naming the parent and the registry", () => {
    const reg = join(tmp.path, "empty-registry");
    mkdirSync(reg);
    const dir = bundle();
    for (const id of ["lora-a", "lora-b"]) {
      expect(() => importModel({ bundle: dir, id, registry: reg })).toThrow(
        `Cannot import: parent model "base-v1" is not in the registry ${reg} (its available/ holds no model yet); ` +
          `add the parent first (${join(reg, "available", "base-v1", "manifest.toml")})`,
      );
    }
    expect(existsSync(join(reg, "available"))).toBe(false);
    // With the parent in place the import goes through, and the message lists what is there.
    mkdirSync(join(reg, "available", "base-v1"), { recursive: true });
    writeFileSync(join(reg, "available", "base-v1", "manifest.toml"), '[model]\nid = "base-v1"\n');
    importModel({ bundle: dir, id: "lora-a", registry: reg });
    expect(() => importModel({ bundle: dir, id: "lora-b", registry: reg, parent: "other" })).toThrow(
      'its available/ holds "base-v1", "lora-a"',
    );
  });

  test("refuses a bundle without lora.json and an id already taken", () => {
    const reg = registry();
    const dir = bundle();
    importModel({ bundle: dir, id: "lora-v2", registry: reg });
    expect(() => importModel({ bundle: dir, id: "lora-v2", registry: reg })).toThrow("already exists");
    const empty = join(tmp.path, "empty");
    mkdirSync(empty);
    expect(() => importModel({ bundle: empty, id: "x", registry: reg })).toThrow(ImportError);
  });

  test("a running bridge publishes the imported model within a second, and the API activates it", async () => {
    const reg = registry();
    const mock = await startMockConsole(bunRuntime(), { token: "t" });
    const c = parseCommand([
      "serve",
      "--mock",
      "--publish",
      "--tcp-port",
      String(mock.port),
      "--auth-token",
      "t",
      "--registry",
      reg,
      "--state-dir",
      join(tmp.path, "state"),
      "--listen",
      "127.0.0.1:0",
    ], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, { registryPollMs: 60_000 });
    const api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
    try {
      await until(() => mock.state.publishes === 1, 5000);
      const t0 = performance.now();
      importModel({ bundle: bundle(), id: "lora-v2", registry: reg });
      await until(() => mock.state.tree?.models.some((m) => m.model_id === "lora-v2") === true, 3000, "the new model in the VM");
      expect(performance.now() - t0).toBeLessThan(1000);
      const put = (path: string, body: unknown) =>
        fetch(`http://127.0.0.1:${api.port}${path}`, {
          method: "PUT",
          headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      // Imported pending: refused until approved.
      expect((await put("/v1/models/active", { model_id: "lora-v2" })).status).toBe(409);
      expect((await put("/v1/models/lora-v2/approval", { status: "approved", reason: "eval passed" })).status).toBe(200);
      const res = await put("/v1/models/active", { model_id: "lora-v2" });
      expect(await res.json()).toEqual({ active: "lora-v2" });
      expect(readFileSync(join(reg, "active"), "utf8")).toBe("lora-v2\n");
      await until(() => mock.state.tree?.active === "lora-v2", 3000, "the active model in the VM");

      // Telemetry now names the adapter: model_id is its base, lora_id the adapter.
      const post = await fetch(`http://127.0.0.1:${api.port}/v1/telemetry`, {
        method: "POST",
        headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/cbor" },
        body: encodeCbor([record(1), record(2)]),
      });
      expect(post.status).toBe(202);
      const spooled = [...daemon.telemetry.spool.records()] as { model_id: string; lora_id?: string }[];
      expect(spooled.map((r) => [r.model_id, r.lora_id])).toEqual([["base-v1", "lora-v2"], ["base-v1", "lora-v2"]]);
      const bad = await fetch(`http://127.0.0.1:${api.port}/v1/telemetry`, {
        method: "POST",
        headers: { Authorization: `Bearer ${api.token}`, "content-type": "application/json" },
        body: JSON.stringify([record(3), { ...record(4), token_count: -1 }]),
      });
      expect(bad.status).toBe(422);
      expect(((await bad.json()) as { error: { field: string } }).error.field).toBe("records[1].token_count");
    } finally {
      await api.close();
      await daemon.stop();
      await mock.close();
    }
  });
});

describe("telemetry export", () => {
  test("writes the spooled records as one CBOR bundle, filtered by --since", () => {
    const { log } = memoryLogger();
    const spool = Spool.open({ dir: join(tmp.path, "state", "telemetry"), log });
    ingest(Array.from({ length: 5 }, (_, i) => record(i)), builtinCatalog(), spool);
    const out = join(tmp.path, "bundle.cbor");
    expect(exportTelemetry({ stateDir: join(tmp.path, "state"), out }, log)).toBe(5);
    const bundleAll = decodeCbor(readFileSync(out)) as { schema: string; count: number; records: { token_count: number }[] };
    expect(bundleAll).toMatchObject({ schema: "gpu-telemetry-bundle/v1", count: 5 });
    expect(bundleAll.records.map((r) => r.token_count)).toEqual([100, 101, 102, 103, 104]);
    expect(exportTelemetry({ stateDir: join(tmp.path, "state"), out, sinceMs: 1_700_000_003_000 }, log)).toBe(2);
    spool.close();
  });
});

describe("telemetry push", () => {
  test("validates the file, naming the line, and posts it to the running bridge", async () => {
    const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--listen", "127.0.0.1:0"], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, { noJournal: true });
    const api = await startApi(c.options, daemon, { runtime: bunRuntime(), log });
    // Asynchronous: a blocking spawn would stop this process's API from answering the child.
    const cli = async (file: string, stateDir = join(tmp.path, "state")) => {
      const proc = Bun.spawn([
        process.execPath,
        join(REPO, "src/main.ts"),
        "telemetry",
        "push",
        file,
        "--url",
        `http://127.0.0.1:${api.port}`,
        "--state-dir",
        stateDir,
      ], { stderr: "pipe" });
      const [stderr, exitCode] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      return { stderr, exitCode };
    };
    try {
      const good = join(tmp.path, "good.ndjson");
      writeFileSync(good, Array.from({ length: 300 }, (_, i) => JSON.stringify(record(i))).join("\n") + "\n");
      const ok = await cli(good);
      expect(ok.stderr).toContain(`pushed 300 records from ${good}`);
      expect(ok.exitCode).toBe(0);
      expect(daemon.telemetry.spool.stats().records).toBe(300);
      const bad = join(tmp.path, "bad.ndjson");
      const { device_id: _, ...noDevice } = record(4);
      writeFileSync(
        bad,
        [JSON.stringify(record(1)), "", JSON.stringify({ ...record(2), confidence: 7 }), "{not json", JSON.stringify(noDevice)].join("\n"),
      );
      const refused = await cli(bad);
      expect(refused.exitCode).toBe(1);
      // Every bad line, each with its number and field; nothing sent.
      expect(refused.stderr).toContain(`Cannot push ${bad}: 3 of 4 lines are not telemetry records the bridge takes; nothing was sent`);
      expect(refused.stderr).toContain(`${bad}:3: confidence: confidence must be 0-1`);
      expect(refused.stderr).toContain(`${bad}:4: not valid JSON`);
      expect(refused.stderr).toContain(`${bad}:5: device_id:`);
      expect(daemon.telemetry.spool.stats().records).toBe(300);

      // A token from another bridge's state folder: the refusal names the file it came from.
      const stale = join(tmp.path, "stale");
      mkdirSync(stale);
      writeFileSync(join(stale, "api-token"), "s".repeat(43) + "\n");
      const unauthorized = await cli(good, stale);
      expect(unauthorized.exitCode).toBe(1);
      expect(unauthorized.stderr).toContain(
        `The bridge at http://127.0.0.1:${api.port} refused the API token from ${join(stale, "api-token")} (HTTP 401)`,
      );
      expect(unauthorized.stderr).toContain("--state-dir");
      expect(daemon.telemetry.spool.stats().records).toBe(300);
    } finally {
      await api.close();
      await daemon.stop();
    }
  });
});
