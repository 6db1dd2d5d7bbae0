/** doctor's MPS and MIG lines: the control program, serve --mps's daemons, each MIG device and its nodes. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { type Check, type DoctorOptions, runDoctor } from "../../src/doctor/mod.ts";
import { mpsFolders } from "../../src/mps/daemons.ts";
import { tempFolder } from "../helpers.ts";
import { addMig, canMknod, discreteTree, SKIP_REASON } from "../cdi/fake-tree.ts";
import { fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { control, FAKE_MPS } from "../mps/helpers.ts";

afterEach(() => scriptFakes({}));
const options = (root: string, stateDir: string): DoctorOptions => ({
  backend: "auto",
  sysRoot: root,
  devRoot: root,
  stateDir,
  spoolMaxBytes: 1024 * 1024,
  cdiSpecDirs: DEFAULTS.cdiSpecDirs,
  console: null,
  timeoutMs: 500,
});
const deps = (env: Record<string, string>) => ({
  env,
  adapter: () => Promise.resolve(bunFfi),
  connect: () => Promise.reject(new Error("no console in this test")),
  uid: 0,
});
const lines = (checks: readonly Check[], name: RegExp) =>
  checks.filter((c) => c.section === "sharing" && name.test(c.name)).map((c) => `${c.status} ${c.name}: ${c.detail}`);

describe.skipIf(!canMknod)(`doctor: MPS and MIG on the fakes${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("each MIG device NVML lists, with its instance ids and its capability nodes; missing nodes say a lease gets no device", async () => {
    const root = discreteTree();
    addMig(root, 1);
    const r = await runDoctor(options(root, join(root, "state")), deps({ ...fakeEnv, PATH: "" }));
    expect(lines(r.checks, /MIG-/)).toEqual([
      "ok GPU-1 NVIDIA H100 80GB HBM3 MIG-99999999-8888-7777-6666-55554444bbb1: GPU instance 1, compute instance 0; " +
      "nodes /dev/nvidia-caps/nvidia-cap12, /dev/nvidia-caps/nvidia-cap13: a lease can name it",
      "ok GPU-1 NVIDIA H100 80GB HBM3 MIG-99999999-8888-7777-6666-55554444bbb2: GPU instance 3, compute instance 0; " +
      "nodes /dev/nvidia-caps/nvidia-cap30, /dev/nvidia-caps/nvidia-cap31: a lease can name it",
    ]);
    scriptFakes({ mig_devices: 1 });
    const bare = discreteTree(); // no mig-minors, no capability nodes
    const b = await runDoctor(options(bare, join(bare, "state")), deps({ ...fakeEnv, PATH: "" }));
    const found = b.checks.filter((c) => /MIG-/.test(c.name));
    expect(found.map((c) => [c.status, c.name])).toEqual([[
      "warn",
      "GPU-1 NVIDIA H100 80GB HBM3 MIG-99999999-8888-7777-6666-55554444bbb1",
    ]]);
    expect(found[0]!.detail).toContain("missing gpu1/gi1/access (not in /proc/driver/nvidia-caps/mig-minors)");
    expect(found[0]!.fix).toContain("mig-minors");
  });

  test("the MPS control program, and serve --mps's daemon per GPU under the state folder", async () => {
    const root = discreteTree();
    const state = tempFolder("doctor-mps-");
    const missing = await runDoctor(options(root, state), deps({ ...fakeEnv, PATH: "/nonexistent" }));
    expect(lines(missing.checks, /^MPS control program$/)).toEqual([
      "warn MPS control program: nvidia-cuda-mps-control not found on PATH: serve --mps cannot start daemons",
    ]);
    expect(missing.ok).toBe(true); // needed only by --mps, which doctor was not given
    expect(control(state, "GPU-0", ["-d"]).code).toBe(0);
    mkdirSync(join(state, "mps", "GPU-1"), { recursive: true });
    try {
      const r = await runDoctor(options(root, state), deps({ ...fakeEnv, GPU_BRIDGE_MPS_CONTROL: FAKE_MPS }));
      expect(lines(r.checks, /MPS/)).toEqual([
        `ok MPS control program: ${FAKE_MPS}: serve --mps can run a daemon per GPU`,
        `info GPU-0 MPS: a control daemon's endpoint is at ${join(mpsFolders(state, "GPU-0").pipe, "control")} (serve --mps's folder): ` +
        "leases' containers join it there",
        `info GPU-1 MPS: no control daemon at ${mpsFolders(state, "GPU-1").pipe}: the bridge is not running with --mps, ` +
        "or this GPU's daemon was refused (its log says why)",
        "info MPS: no control pipe at /tmp/nvidia-mps: no system-wide MPS daemon there, or it uses another CUDA_MPS_PIPE_DIRECTORY (NVML cannot say)",
      ]);
    } finally {
      control(state, "GPU-0", [], "quit\n");
    }
  });
});
