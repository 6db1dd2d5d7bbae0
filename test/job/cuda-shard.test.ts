/**
 * A sealed shard as operand b on the CUDA runner (fake libcuda): the shard's exported descriptor
 * goes to the run-kernel child, which maps it read-only (cuMemImportFromShareableHandle,
 * cuMemMap, cuMemSetAccess PROT_READ) and launches on it; nothing is copied in for b, and a
 * write through that mapping fails.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaDevice, CudaExecError } from "../../ffi/cuda-exec.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { UnixShare } from "../../ffi/unix-share.ts";
import { ProcessRunner } from "../../src/job/runner.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { REPO } from "../helpers.ts";
import { CTL_FILE, FAKE_CUDA, scriptFakes } from "../inventory/fakes.ts";

const f32 = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const ptx = (k: string) => readFileSync(join(REPO, "src/job/ptx/generated", `${k}.ptx`));
const libc = UnixShare.open(bunFfi);
scriptFakes({});
const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
afterAll(() => vram.close());

/** b in exportable (fake) VRAM, as a sealed shard holds it, and a descriptor for it. */
function exported(b: Uint8Array) {
  const buf = vram.allocShareable(0, b.length);
  vram.write(buf, 0, b);
  return { buf, fd: vram.exportFd(buf) };
}

describe("a shard mapped read-only by the CUDA runner (fake driver)", () => {
  test("the child computes a + the shard's bytes from a read-only mapping of its descriptor", async () => {
    scriptFakes({});
    const b = f32([10, 20, 30, 40]);
    const { buf, fd } = exported(b);
    const runner = new ProcessRunner(bunRuntime(), { GPU_BRIDGE_CUDA_LIB: FAKE_CUDA, FAKE_GPU_CTL: CTL_FILE });
    expect(runner.passesFds).toBe(true);
    const r = await runner.run({
      spec: { kernel: "vadd", grid: [1, 1, 1], block: [32, 1, 1] },
      runner: "cuda",
      memLimitBytes: 1 << 30,
      payload: ptx("vadd"),
      operands: f32([1, 2, 3, 4]),
      device: 0,
      shard: { fd, mappedBytes: buf.mappedBytes, bytes: b.length },
    }, new AbortController().signal);
    libc.close(fd);
    expect(r.ok && [...new Float32Array(r.output!.slice().buffer)]).toEqual([11, 22, 33, 44]);
    vram.free(buf);
  });

  test("the mapping the child makes is read-only: a copy into it fails ILLEGAL_ADDRESS, and the shard is unchanged", () => {
    scriptFakes({});
    const b = f32([1, 2, 3, 4]);
    const { buf, fd } = exported(b);
    const device = CudaDevice.open(bunFfi, [FAKE_CUDA], 0);
    try {
      const ptr = device.importReadOnly(fd, buf.mappedBytes);
      const back = new Uint8Array(b.length);
      device.copyOut(back, ptr);
      expect([...back]).toEqual([...b]);
      let error: unknown = null;
      try {
        device.copyIn(ptr, f32([9, 9, 9, 9]));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CudaExecError);
      expect((error as CudaExecError).code).toBe(700);
    } finally {
      device.close();
      libc.close(fd);
    }
    const now = new Uint8Array(b.length);
    vram.read(buf, 0, now);
    expect([...now]).toEqual([...b]);
    vram.free(buf);
  });
});
