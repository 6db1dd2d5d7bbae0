/**
 * Exportable VRAM on the fake libcuda (ffi/cuda-vram.ts, mock/native/fake_cuda.c): a VMM
 * allocation's descriptor, passed to a Python process, maps the same memory read-only there
 * (reads see the bridge's writes; the importer's writes fail); a device that cannot export says
 * why, and the lease socket refuses such a shard with that reason rather than sharing it some
 * weaker way.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { UnixShare } from "../../ffi/unix-share.ts";
import { systemClock } from "../../src/util/clock.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { CudaVramBackend } from "../../src/vram/cuda-backend.ts";
import { executeCheck } from "../../src/vram/execute-check.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShareHub } from "../../src/vram/share.ts";
import { ShardStore } from "../../src/vram/shards.ts";
import { VRAM_RETRYABLE, type VramErrorCode } from "../../src/vram/errors.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, memoryLogger, tempDir } from "../helpers.ts";
import { FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";
import { pattern, source } from "./vectors.ts";
import { jsonLines } from "./child-lines.ts";

const PYTHON = spawnSync("python3", ["-c", "import socket; socket.recv_fds"]).status === 0 ? "python3" : null;
const CLIENT = join(import.meta.dir, "..", "..", "clients", "python");
const pool = TreePool.create(1);
const tmp = tempDir("gbh-share-cuda-");
afterAll(() => {
  pool.close();
  tmp.cleanup();
});

/** A Python importer of descriptor 3: prints the bytes' SHA-256 and its write's CUresult, then again after a line on stdin. */
const IMPORTER = `
import json, sys
sys.path.insert(0, ${JSON.stringify(CLIENT)})
from gpu_bridge_share import Driver, map_fd
info = json.loads(sys.argv[1])
m = map_fd(Driver(), 3, info)
print(json.dumps({"sha256": m.sha256(), "write_rc": m.try_write(5, b"x")}), flush=True)
sys.stdin.readline()
print(json.dumps({"sha256": m.sha256()}), flush=True)
m.close()
`;

/** Runs python3 with `args` on the fake libcuda; its exit status and output. */
function run(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string }> {
  const child = spawn(PYTHON!, args, {
    env: { ...process.env, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout!.on("data", (d) => (stdout += String(d)));
  return new Promise((resolve) => child.on("exit", (status) => resolve({ status, stdout })));
}

describe.skipIf(PYTHON === null)("exported VRAM on the fake libcuda", () => {
  test("a second process maps the allocation read-only: the same bytes, its write fails, the bridge's change shows", async () => {
    scriptFakes({});
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    const data = pattern(100_000);
    const buf = vram.allocShareable(0, data.length);
    expect(buf.shareRefusal).toBeNull();
    expect(buf.mappedBytes).toBe(2 * 1024 * 1024);
    vram.write(buf, 0, data);
    const fd = vram.exportFd(buf);
    const info = { shard_id: "s", gpu_device: 0, vram_bytes: data.length, mapped_bytes: buf.mappedBytes, digest: "" };
    const child = spawn(PYTHON!, ["-c", IMPORTER, JSON.stringify(info)], {
      env: { ...process.env, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA },
      stdio: ["pipe", "pipe", "inherit", fd],
    });
    UnixShare.open(bunFfi).close(fd); // the child has its own copy
    const { next: line } = jsonLines(child.stdout!);
    const first = await line(1);
    expect(first.sha256).toBe(createHash("sha256").update(data).digest("hex"));
    expect(first.write_rc).toBe(700); // CUDA_ERROR_ILLEGAL_ADDRESS: mapped with PROT_READ
    const back = new Uint8Array(data.length);
    vram.read(buf, 0, back);
    expect(back).toEqual(data); // nothing the importer did reached the memory
    vram.memset(buf, 10, data[10]! ^ 0xff, 1);
    child.stdin!.write("again\n");
    expect((await line(2)).sha256).not.toBe(first.sha256);
    expect(await new Promise((r) => child.on("exit", r))).toBe(0);
    vram.free(buf);
    vram.close();
  });

  test.each([
    [{ vmm: 0 }, "VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED is 0"],
    [{ posix_fd: 0 }, "HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED is 0"],
    [{ jetson: 1 }, "integrated (Tegra) GPU"],
  ])("where the device cannot export (%o), the allocation says why and cannot be exported", (keys, why) => {
    scriptFakes(keys);
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    try {
      const buf = vram.allocShareable(0, 4096);
      expect(buf.shareRefusal).toContain(why);
      expect(() => vram.exportFd(buf)).toThrow(why);
      vram.free(buf);
    } finally {
      vram.close();
      scriptFakes({});
    }
  });

  test("the lease socket refuses a shard on memory that cannot be exported, with the reason, and hands out nothing", async () => {
    scriptFakes({ vmm: 0 });
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    const lease = activeLease({ id: "L-cuda", worker_id: "w-cuda" });
    const { log, lines } = memoryLogger();
    const audit = new VramAudit(null, log);
    const store = new ShardStore({
      backend: new CudaVramBackend(vram, pool),
      audit,
      key: deriveKey("secret", "test"),
      lease: (id) => (id === lease.id ? lease : undefined),
      ordinalOf: () => 0,
    });
    const hub = new ShareHub({
      dir: join(tmp.path, "share"),
      libc: UnixShare.open(bunFfi),
      store,
      tokenKey: deriveKey("secret", "share"),
      attest: () => ({}),
      check: async (id) => await executeCheck(store, id, { maxAgeMs: 0, mode: "full", now: () => Date.now() }),
      audit,
      log,
      clock: systemClock,
    });
    try {
      await hub.openLease(lease);
      const { shard } = await store.seal(lease.id, source(pattern(5000)), { shard_id: "no-vmm" });
      expect(store.shareRefusal("no-vmm")).toContain("VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED is 0");
      // Not spawnSync: the hub answers on this thread.
      const r = await run([join(CLIENT, "gpu_bridge_share.py"), "open", shard.shard_id], {
        GPU_BRIDGE_SHARE_SOCKET: hub.paths(lease.id).socket,
        GPU_BRIDGE_SHARE_TOKEN: hub.token(lease.id),
      });
      expect(r.status).toBe(1);
      const refusal = JSON.parse(r.stdout);
      expect(refusal).toMatchObject({ ok: false, code: "not_shareable", retryable: false });
      expect(refusal.message).toContain("VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED is 0");
      expect(lines.some((l) => l.includes("ShareHandedOut"))).toBe(false);
      // The shard itself is sealed and verifies: only sharing is refused.
      expect((await store.verify("no-vmm")).ok).toBe(true);
    } finally {
      hub.close();
      store.close();
      vram.close();
      scriptFakes({});
    }
  });

  test("a driver that refuses an allocation or a free gives the consumers' kinds: cuda_allocation_failed, CudaDeallocationFailed", async () => {
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    const lease = activeLease({ id: "L-drv", worker_id: "w-drv" });
    const { log, lines } = memoryLogger();
    const store = new ShardStore({
      backend: new CudaVramBackend(vram, pool),
      audit: new VramAudit(null, log),
      key: deriveKey("secret", "test"),
      lease: () => lease,
      ordinalOf: () => 0,
    });
    try {
      scriptFakes({ alloc_error: 999 }); // CUDA_ERROR_UNKNOWN
      const err = await store.seal(lease.id, source(pattern(5000)), {}).catch((e) => e);
      expect(err).toMatchObject({ code: "cuda_allocation_failed" });
      expect(err.message).toContain("cuMemCreate failed");
      expect(VRAM_RETRYABLE[err.code as VramErrorCode]).toBe(true);
      scriptFakes({});
      await store.seal(lease.id, source(pattern(5000)), { shard_id: "drv-0" });
      scriptFakes({ free_error: 999 });
      // Never throws; says what the driver answered.
      expect(store.release("drv-0")).toMatchObject({
        shard_id: "drv-0",
        deallocation_error: expect.stringContaining("cuMemRelease failed"),
      });
      const dealloc = lines.filter((l) => l.includes("VramDeallocated")).pop()!;
      expect(dealloc).toContain("CudaDeallocationFailed: cuMemRelease failed");
      expect(dealloc).toContain('"freed_bytes":0');
    } finally {
      scriptFakes({});
      store.close();
      vram.close();
    }
  });
});
