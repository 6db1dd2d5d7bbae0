/**
 * A CUDA client for gpu-check's cap steps, run as a container would be: it takes the env a lease's
 * CDI device gives (CUDA_MPS_PIPE_DIRECTORY, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, ...) from its own
 * environment, allocates MIB MiB on device 0, and prints one JSON line: {ok} or {ok:false, code, message}.
 */
import process from "node:process";
import { CudaExecError } from "../../ffi/cuda-exec.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { cudaCandidates, loadFfiAdapter } from "../../ffi/loader.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";

const mib = Number(process.argv[2]);
if (!Number.isSafeInteger(mib) || mib <= 0) {
  process.stderr.write(`mps-client: MIB must be a whole number of MiB above 0, got ${JSON.stringify(process.argv[2])}\n`);
  process.exit(2);
}
const vram = CudaVram.open(await loadFfiAdapter(), cudaCandidates(process.env), TREE_PTX);
try {
  const buf = vram.alloc(0, mib * 1048576);
  vram.free(buf);
  process.stdout.write(JSON.stringify({ ok: true }) + "\n");
} catch (error) {
  const code = error instanceof CudaExecError ? error.code : null;
  process.stdout.write(JSON.stringify({ ok: false, code, message: (error as Error).message }) + "\n");
} finally {
  vram.close();
}
