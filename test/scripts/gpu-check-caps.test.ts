/**
 * gpu-check's cap steps (--mps, --mig) on the fakes: serve --mps with the fake MPS control
 * program, a lease's cap held by the fake libcuda's MPS client (as the real driver holds it), the
 * daemon gone with the bridge; a MIG device of the fake NVML leased by UUID. And each failing
 * loudly where the host cannot do it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseGpuCheckArgs } from "../../scripts/gpu-check/args.ts";
import { migSteps, mpsSteps } from "../../scripts/gpu-check/steps-caps.ts";
import { REPO, tempFolder } from "../helpers.ts";
import { addMig, canMknod, discreteTree, SKIP_REASON } from "../cdi/fake-tree.ts";
import { CTL_FILE, fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { FAKE_MPS } from "../mps/helpers.ts";

const saved = { ...process.env };
afterEach(() => {
  for (const k of ["GPU_BRIDGE_MPS_CONTROL", "GPU_BRIDGE_NVML_LIB", "GPU_BRIDGE_CUDA_LIB", "FAKE_GPU_CTL"]) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
const options = (argv: string[]) => parseGpuCheckArgs(argv, {}, join(REPO, "src", "main.ts"), process.execPath);

describe.skipIf(!canMknod)(`gpu-check --mps --mig on the fakes${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("the MPS rows pass: a daemon, 64 MiB allocated and 512 MiB refused under a 256 MiB cap, the daemon gone at the stop", async () => {
    scriptFakes({});
    Object.assign(process.env, fakeEnv, { GPU_BRIDGE_MPS_CONTROL: FAKE_MPS, FAKE_GPU_CTL: CTL_FILE });
    const root = discreteTree();
    const o = options(["--mps", `--serve-args=--backend nvml --cdi-root ${root} --sys-root ${root}`]);
    const rows = await mpsSteps(o, tempFolder("gpu-check-mps-"));
    expect(rows.map((r) => [r.step, r.ok])).toEqual([
      ["mps daemon per GPU (needs an MPS-capable GPU)", true],
      ["mps memory cap (needs an MPS-capable GPU)", true],
      ["mps daemon stopped with the bridge (needs an MPS-capable GPU)", true],
    ]);
    expect(rows[1]!.detail).toBe("cap 0=256M, SM share 25%: 64 MiB allocated, 512 MiB refused (CUresult 2)");
  }, 60_000);

  test("without an MPS control program the rows fail, naming why", async () => {
    scriptFakes({});
    Object.assign(process.env, fakeEnv, { GPU_BRIDGE_MPS_CONTROL: "/nonexistent/nvidia-cuda-mps-control", FAKE_GPU_CTL: CTL_FILE });
    const root = discreteTree();
    const rows = await mpsSteps(
      options(["--mps", `--serve-args=--backend nvml --cdi-root ${root} --sys-root ${root}`]),
      tempFolder("gpu-check-mps-"),
    );
    const detail = rows[0]!.detail;
    expect(detail).toContain("no control endpoint");
    expect(detail).toContain("Cannot run /nonexistent/nvidia-cuda-mps-control");
    expect(rows.map((r) => r.ok)).toEqual([false, false, false]);
    expect(rows[2]!.detail).toBe("no daemon was started to stop");
  }, 60_000);

  test("the MIG row passes on the fake NVML's MIG device, and fails naming why on a host with none", async () => {
    scriptFakes({});
    Object.assign(process.env, fakeEnv, { FAKE_GPU_CTL: CTL_FILE });
    const root = discreteTree();
    addMig(root, 1);
    const rows = await migSteps(
      options(["--mig", `--serve-args=--backend nvml --cdi-root ${root} --sys-root ${root}`]),
      tempFolder("gpu-check-mig-"),
    );
    expect(rows.map((r) => r.ok)).toEqual([true]);
    expect(rows[0]!.detail).toBe(
      "MIG-99999999-8888-7777-6666-55554444bbb1: lease 201 (holds it), 3 nodes (2 capability), second claim 409, 64 MiB on it allocated",
    );
    const none = await migSteps(options(["--mig", "--serve-args=--mock"]), tempFolder("gpu-check-mig-"));
    expect(none).toEqual([{
      step: "mig lease by UUID (needs a GPU in MIG mode)",
      ok: false,
      figure: "",
      detail: expect.stringContaining("no MIG device"),
    }]);
  }, 60_000);
});

test("the fake libcuda holds an MPS client to its pinned limit only while a daemon serves the pipe folder", () => {
  const dir = tempFolder("fake-mps-client-");
  const run = (env: Record<string, string>) => {
    const r = Bun.spawnSync([process.execPath, join(REPO, "scripts/gpu-check/mps-client.ts"), "512"], {
      env: { ...process.env, ...fakeEnv, FAKE_GPU_CTL: CTL_FILE, ...env },
    });
    return JSON.parse(r.stdout.toString()) as { ok: boolean; code?: number };
  };
  scriptFakes({});
  expect(run({ CUDA_MPS_PIPE_DIRECTORY: dir, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "0=256M" }).ok).toBe(true); // no daemon: no cap
  writeFileSync(join(dir, "control"), ""); // the endpoint of a running daemon
  expect(run({ CUDA_MPS_PIPE_DIRECTORY: dir, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "0=256M" })).toMatchObject({ ok: false, code: 2 });
  expect(run({ CUDA_MPS_PIPE_DIRECTORY: dir, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "0=1G" }).ok).toBe(true);
  expect(run({ CUDA_MPS_PIPE_DIRECTORY: dir, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "1=256M" }).ok).toBe(true); // another device's cap
  expect(run({ CUDA_MPS_PIPE_DIRECTORY: dir, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: "256M" })).toMatchObject({ ok: false, code: 2 });
});
