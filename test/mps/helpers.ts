/** The fake MPS control program, and running it by hand as an operator would. */
import { join } from "node:path";
import { mpsFolders } from "../../src/mps/daemons.ts";
import { REPO } from "../helpers.ts";

export const FAKE_MPS = join(REPO, "mock", "mps", "nvidia-cuda-mps-control");

/** Runs the fake control program by hand (as an operator would) for `gpuId`'s folders. */
export function control(stateDir: string, gpuId: string, args: string[], stdin = "") {
  const dirs = mpsFolders(stateDir, gpuId);
  const r = Bun.spawnSync([FAKE_MPS, ...args], {
    stdin: new TextEncoder().encode(stdin),
    env: { ...process.env, CUDA_MPS_PIPE_DIRECTORY: dirs.pipe, CUDA_MPS_LOG_DIRECTORY: dirs.log },
  });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}
