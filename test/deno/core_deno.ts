/**
 * The pure core on Deno: the same byte-for-byte promises the Bun suite checks, run by
 * `deno test` so a Deno-only regression cannot hide.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { parseAck } from "../../src/contract/ack.ts";
import { encodeFrame, FrameDecoder, FrameError } from "../../src/contract/frame.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { renderList } from "../../src/contract/list.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { escapeString, quote } from "../../src/contract/escape.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { CtlReceiver } from "../../mock/console/receiver.ts";
import { startMockConsole } from "../../mock/console/server.ts";
import { publishOnce } from "../../src/console/publish.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { denoFfi } from "../../ffi/deno.ts";
import { openNativeBackend } from "../../src/inventory/native.ts";
import { normalizePciBusId } from "../../src/inventory/pci.ts";
import { sampleJetsonGpu } from "../../src/inventory/sysfs.ts";
import { createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { HostState } from "../../src/host/state.ts";
import { ProcessRunner } from "../../src/job/runner.ts";
import { createLogger } from "../../src/util/log.ts";
import { mockStats } from "../../src/inventory/mock.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { encodeBase64 } from "../../src/util/base64.ts";

declare const Deno: { test(name: string, fn: () => void | Promise<void>): void };

const ns = buildNamespace(MOCK_GPUS, builtinCatalog());

Deno.test("renderList() reproduces the fixture on Deno", () => {
  const fixture = readFileSync(new URL("../fixtures/mock-list.json", import.meta.url), "utf8");
  strictEqual(renderList(ns), fixture);
});

Deno.test("quote() keeps the reference's escaping where V8's JSON.stringify differs", () => {
  strictEqual(quote("a\bb\fc"), '"a\\u0008b\\u000cc"');
  strictEqual(quote("x\ud800y\n"), '"x\ud800y\\n"');
  for (let c = 0; c < 0x80; c++) strictEqual(quote(String.fromCharCode(c)), `"${escapeString(String.fromCharCode(c))}"`);
  for (const t of ["\u2028\u2029", "é🚀", "\udfff", '"\\/']) strictEqual(quote(t), `"${escapeString(t)}"`);
});

Deno.test("makeSnapshot() gives the contract's size and hash on Deno", () => {
  const snap = makeSnapshot(ns);
  strictEqual(snap.bytes.length, 1477);
  strictEqual(snap.sha256, "704821d10bbd99487459a9df07ce769a6bb2c781c7661a31f0214021ba272e1b");
});

Deno.test("CtlReceiver lands the publish lines on Deno", () => {
  const rx = new CtlReceiver();
  let tree;
  for (const line of publishLines(makeSnapshot(ns))) {
    const r = rx.accept(line);
    strictEqual(r.ok, true);
    if (r.ok && r.tree) tree = r.tree;
  }
  deepStrictEqual(tree, ns);
});

Deno.test("FrameDecoder splits byte by byte and rejects bad lengths on Deno", () => {
  const bytes = new Uint8Array([...encodeFrame("OK AUTH"), ...encodeFrame("PONG")]);
  const dec = new FrameDecoder();
  const lines: string[] = [];
  for (const b of bytes) lines.push(...dec.push(new Uint8Array([b])));
  deepStrictEqual(lines, ["OK AUTH", "PONG"]);
  throws(() => new FrameDecoder().push(new Uint8Array([3, 0, 0, 0])), FrameError);
  deepStrictEqual(parseAck("ERR ATTACH reason=quota detail=throttled delay_ms=250")?.fields, {
    reason: "quota",
    detail: "throttled",
    delay_ms: "250",
  });
});

Deno.test("publishOnce() lands the snapshot through Deno's TCP adapter, both ends on Deno", async () => {
  const runtime = denoRuntime();
  const mock = await startMockConsole(runtime, { token: "t" });
  try {
    const snap = makeSnapshot(ns);
    const target = { host: "127.0.0.1", port: mock.port, token: "t", ticket: "" };
    const report = await publishOnce(runtime.connect, target, snap, publishLines(snap));
    strictEqual(report.frames, 20);
    deepStrictEqual(mock.state.tree, ns);
  } finally {
    await mock.close();
  }
});

const fake = (name: string) => new URL(`../../mock/native/build/${name}`, import.meta.url).pathname;

Deno.test("the NVML backend runs through Deno.dlopen against the fake libraries", async () => {
  const backend = openNativeBackend({
    kind: "auto",
    adapter: denoFfi,
    env: { GPU_BRIDGE_NVML_LIB: fake("libnvidia-ml.so.1"), GPU_BRIDGE_CUDA_LIB: fake("libcuda.so.1") },
    sysRoot: "/",
  });
  try {
    strictEqual(backend.name, "nvml");
    deepStrictEqual((await backend.list()).map((g) => [g.id, g.name, g.sm_count]), [
      ["GPU-0", "NVIDIA A100-SXM4-40GB", 108],
      ["GPU-1", "NVIDIA H100 80GB HBM3", 132],
    ]);
    const stats = await backend.stats();
    deepStrictEqual(stats[0]!.processes, [{ pid: 4242, used_memory_mib: 256 }, { pid: 4243, used_memory_mib: 512 }]);
  } finally {
    backend.close();
  }
});

Deno.test("sysfs readers and PCI ids behave the same on Deno", () => {
  const sample = sampleJetsonGpu(new URL("../../mock/jetson/orin-r36", import.meta.url).pathname);
  strictEqual(sample.loadPct, 42.3);
  strictEqual(sample.temperatureC, 45.5);
  strictEqual(normalizePciBusId("00000000:65:00.0"), normalizePciBusId("0000:65:00.0"));
});

Deno.test("the API and a real job in a Deno child process, on Deno", async () => {
  const log = createLogger({ level: "error", write: () => {} });
  const host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: new ProcessRunner(denoRuntime()),
    runnerKind: "cpu",
    log,
    onChange: () => {},
  });
  const app = createApp({
    token: "deno-token",
    log,
    bridge: bridgeFacade({
      version: "test",
      hostname: "h",
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: builtinCatalog },
    }),
  });
  const auth = { Authorization: "Bearer deno-token", "content-type": "application/json" };
  try {
    const lease = await (await app.request("/v1/leases", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ gpu_id: "GPU-0", worker_id: "d", mem_mb: 64, streams: 1, ttl_s: 60 }),
    })).json() as { id: string };
    // The operands, as Cohesix sends them: little-endian f32, a (1..256) then b (all 0.5).
    const values = new Float32Array(512).map((_, i) => (i < 256 ? i + 1 : 0.5));
    const operands = new Uint8Array(values.buffer);
    const submitted = await app.request(`/v1/leases/${lease.id}/jobs`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        job: "deno-job",
        kernel: "vadd",
        grid: [1, 1, 1],
        block: [1, 1, 1],
        bytes_hash: `sha256:${sha256Hex(operands)}`,
        inputs: ["/bundles/vadd.ptx"],
        outputs: ["/worker/d/result"],
        timeout_ms: 30_000,
        payload_b64: encodeBase64(operands),
      }),
    });
    strictEqual(submitted.status, 202);
    const deadline = Date.now() + 30_000;
    while (host.jobs.get("deno-job")?.state !== "OK" && host.jobs.get("deno-job")?.state !== "ERR" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const job = await (await app.request("/v1/jobs/deno-job")).json() as { state: string; result: { size: number } };
    strictEqual(job.state, "OK");
    strictEqual(job.result.size, 256);
    const result = new Float32Array(await (await app.request("/v1/jobs/deno-job/result")).arrayBuffer());
    strictEqual(result[255], 256.5);
  } finally {
    host.close();
  }
});

// The options form (the declaration above has only the short one): sanitizers off.
(Deno as unknown as { test(o: { name: string; sanitizeOps: boolean; sanitizeResources: boolean; fn: () => Promise<void> }): void }).test({
  name: "the device plugin registers with the stub kubelet and answers Allocate on Deno (grpc-js on Deno's Node layer)",
  // grpc-js keeps its own timers and sockets past close(): Deno's sanitizers would count them.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { mkdirSync, rmSync } = await import("node:fs");
    const { createBridge } = await import("../../src/app/bridge.ts");
    const { parseCommand } = await import("../../src/cli/options.ts");
    const { mockBackend } = await import("../../src/inventory/mock.ts");
    const { StubKubelet } = await import("../../mock/kubelet/stub.ts");
    const dir = new URL(`../../build/deno-k8s-${process.pid}/`, import.meta.url).pathname;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const kubelet = new StubKubelet(`${dir}kubelet`);
    await kubelet.start();
    const argv = ["serve", "--mock", "--no-api", "--state-dir", `${dir}state`, "--cdi-dir", `${dir}cdi`, "--kubelet-dir", kubelet.dir];
    const c = parseCommand([...argv, "--k8s-resource", "cohesix.io/gpu"], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const log = createLogger({ level: "error", write: () => {} });
    const bridge = await createBridge(c.options, { runtime: denoRuntime(), log, backend: mockBackend() }, { noJournal: true });
    try {
      for (let i = 0; i < 200 && kubelet.registrations.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      strictEqual(kubelet.registrations[0]?.resource_name, "cohesix.io/gpu");
      const client = kubelet.plugin();
      const reply = await client.allocate([["GPU-00000000-0000-4000-8000-000000000001"]]);
      const lease = bridge.leases.live()[0]!;
      deepStrictEqual(reply.container_responses[0]!.cdi_devices, [{ name: `cohesix/gpu=${lease.id}` }]);
      strictEqual(lease.worker_id, "k8s.GPU-00000000-0000-4000-8000-000000000001");
      client.close();
    } finally {
      await bridge.stop();
      await kubelet.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
