/**
 * scripts/gpu-check.ts without a GPU: its command line, its table, the nvidia-smi parser and
 * comparisons against a recorded output, the shard steps failing loudly when the driver refuses
 * the kernels, and one whole run against the fake libraries and a scripted nvidia-smi.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bunFfi } from "../../ffi/bun.ts";
import { CudaVram } from "../../ffi/cuda-vram.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { parseGpuCheckArgs, UsageError } from "../../scripts/gpu-check/args.ts";
import {
  compareInventory,
  compareLive,
  normalizeBusId,
  parseSmi,
  SmiParseError,
  type StatsGpu,
} from "../../scripts/gpu-check/nvidia-smi.ts";
import { run, StepError } from "../../scripts/gpu-check/steps-cli.ts";
import { shardSteps } from "../../scripts/gpu-check/steps-gpu.ts";
import { fail, pass, renderTable, type Row } from "../../scripts/gpu-check/table.ts";
import { REPO, tempDir } from "../helpers.ts";
import { FAKE_CUDA, FAKE_NVML, scriptFakes } from "../inventory/fakes.ts";

const SMI_FIXTURE = readFileSync(join(REPO, "test/fixtures/nvidia-smi/query-gpu.csv"), "utf8");
const parse = (argv: string[], env: Record<string, string> = {}) => parseGpuCheckArgs(argv, env, "/repo/src/main.ts", "/bin/bun");
const usage = (argv: string[], env: Record<string, string> = {}) => {
  try {
    parse(argv, env);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`no UsageError for ${argv.join(" ")}`);
};

describe("gpu-check's command line", () => {
  test("defaults: 1 and 10 GiB on device 0, the bridge from src/main.ts, nvidia-smi from PATH", () => {
    expect(parse([])).toEqual({
      gib: [1, 10],
      device: 0,
      bridge: ["/bin/bun", "/repo/src/main.ts"],
      nvidiaSmi: "nvidia-smi",
      cdiArgs: [],
      serveArgs: [],
      mps: false,
      mig: false,
      json: false,
      help: false,
    });
    expect(parse([], { GPU_CHECK_GIB: "0.5", GPU_CHECK_DEVICE: "3" })).toMatchObject({ gib: [0.5], device: 3 });
    expect(parse(["--gib", "2", "--device", "1"], { GPU_CHECK_GIB: "0.5", GPU_CHECK_DEVICE: "3" })).toMatchObject({ gib: [2], device: 1 });
    expect(parse(["--bin", "dist/gpu-bridge-host", "--cdi-args", " --driver-root  /run/nvidia/driver ", "--json"])).toMatchObject({
      bridge: ["dist/gpu-bridge-host"],
      cdiArgs: ["--driver-root", "/run/nvidia/driver"],
      json: true,
    });
  });

  test("every refusal names the flag and the value", () => {
    expect(usage(["--gib", "1,,2"])).toBe('--gib: "" in "1,,2" is not a size in GiB above 0 and at most 1024');
    expect(usage(["--gib", "0"])).toContain('"0" in "0"');
    expect(usage(["--gib", "ten"])).toContain('"ten"');
    expect(usage(["--gib", "2048"])).toContain('"2048"');
    expect(usage([], { GPU_CHECK_GIB: "-1" })).toContain('"-1"');
    expect(usage(["--device", "x"])).toContain("--device");
    expect(usage([], { GPU_CHECK_DEVICE: "0x1" })).toBe('GPU_CHECK_DEVICE: "0x1" is not a CUDA ordinal (0..1023)');
    expect(usage(["--skip", "doctor"])).toBe("Unknown option --skip");
    expect(usage(["doctor"])).toBe('Unexpected argument "doctor"');
  });
});

describe("gpu-check's table", () => {
  test("aligned columns, FAIL rows visible, the count of failures last; a detail never breaks a line", () => {
    const rows: Row[] = [
      pass("seal 1 GiB", "812 ms (1.32 GB/s)", "tree 0123…"),
      fail("doctor --json", "no doctor\ncommand   here"),
      pass("x", ""),
    ];
    const text = renderTable(rows);
    expect(text).toBe(
      [
        "step           result  figure              detail",
        "-------------  ------  ------------------  ------",
        "seal 1 GiB     PASS    812 ms (1.32 GB/s)  tree 0123…",
        "doctor --json  FAIL                        no doctor | command here",
        "x              PASS",
        "",
        "gpu-check: 1 of 3 steps FAILED",
        "",
      ].join("\n"),
    );
    expect(renderTable([pass("a", "1 ms")])).toEndWith("gpu-check: all 1 steps passed\n");
  });
});

describe("gpu-check's commands", () => {
  test("one that cannot start or overruns its limit is a StepError saying which, never a hang", () => {
    expect(run(["sh", "-c", "echo out; echo err >&2; exit 3"])).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(() => run(["/nonexistent/nvidia-smi", "--query-gpu=index,uuid,name,pci.bus_id,memory.total,memory.used"])).toThrow(
      "/nonexistent/nvidia-smi --query-gpu=index,uuid,name,pci.bus_i… could not run: ",
    );
    expect(() => run(["sleep", "5"], 100)).toThrow(new StepError("sleep 5 ran past its limit of 100 ms and was killed"));
  });
});

describe("nvidia-smi --query-gpu", () => {
  test("parses a recorded output: numbers, [N/A] as null, bus ids and compute capability kept", () => {
    const gpus = parseSmi(SMI_FIXTURE);
    expect(gpus).toHaveLength(2);
    expect(gpus[0]).toEqual({
      index: 0,
      uuid: "GPU-5b2a3c1e-7d4f-4e8a-9b6c-0123456789ab",
      name: "NVIDIA H200",
      pci_bus_id: "00000000:19:00.0",
      memory_total_mib: 143771,
      memory_used_mib: 4,
      utilization_gpu_pct: 0,
      temperature_c: 29,
      power_w: 74.62,
      power_limit_w: 700,
      compute_capability: "9.0",
      driver_version: "570.124.06",
    });
    expect(gpus[1]!.power_w).toBeNull();
  });

  test("a line it cannot read is an error naming the line and the field", () => {
    expect(() => parseSmi("0, GPU-x, a, b\n")).toThrow(SmiParseError);
    expect(() => parseSmi("\n0, GPU-x, a, b\n")).toThrow("nvidia-smi line 2: 4 fields, expected 12");
    expect(() => parseSmi(SMI_FIXTURE.replace("143771, 4,", "143771, lots,"))).toThrow(
      'nvidia-smi line 1: memory.used is "lots", not a number',
    );
    expect(() => parseSmi(SMI_FIXTURE.replace("GPU-5b2a", "MIG-5b2a"))).toThrow("no index or GPU UUID");
  });

  test("bus ids compare across NVML's, CUDA's and nvidia-smi's spellings", () => {
    expect(normalizeBusId("00000000:3B:00.0")).toBe("0000:3b:00.0");
    expect(normalizeBusId("0000:3b:00.0")).toBe("0000:3b:00.0");
    expect(normalizeBusId("00000001:3B:00.0")).not.toBe(normalizeBusId("00000000:3B:00.0"));
  });

  const smi = parseSmi(SMI_FIXTURE);
  const ours = (): StatsGpu[] =>
    smi.map((g) => ({
      uuid: g.uuid,
      name: g.name,
      pci_bus_id: normalizeBusId(g.pci_bus_id),
      memory_total_mib: g.memory_total_mib,
      memory_used_mib: g.memory_used_mib,
      temperature_c: g.temperature_c,
      power_w: g.power_w,
      compute_capability: g.compute_capability,
    }));

  test("the inventory comparison: joined by UUID, in any order; each difference named", () => {
    expect(compareInventory(ours().reverse(), smi, 0)).toEqual([]);
    const [a, b] = ours();
    expect(compareInventory([{ ...a!, name: "H200" }], smi, 0)).toEqual([
      "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d (NVIDIA H200): nvidia-smi lists it, the bridge does not",
      'GPU-5b2a3c1e-7d4f-4e8a-9b6c-0123456789ab: name "H200", nvidia-smi "NVIDIA H200"',
    ]);
    expect(compareInventory([a!, { ...b!, memory_total_mib: 140000 }], smi, 0)).toEqual([
      "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d: memory 140000 MiB, nvidia-smi 143771 MiB (tolerance 0%)",
    ]);
    expect(compareInventory([a!, { ...b!, memory_total_mib: 140000 }], smi, 3)).toEqual([]);
    expect(compareInventory([a!, { ...b!, pci_bus_id: "0000:3c:00.0", compute_capability: "8.0" }], smi, 0)).toEqual([
      "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d: PCI 0000:3c:00.0, nvidia-smi 00000000:3B:00.0",
      "GPU-a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d: compute capability 8.0, nvidia-smi 9.0",
    ]);
    expect(compareInventory([...ours(), { ...a!, uuid: "GPU-00000000-0000-0000-0000-000000000000" }], smi, 0)).toEqual([
      "GPU-00000000-0000-0000-0000-000000000000 (NVIDIA H200): the bridge lists it, nvidia-smi does not",
    ]);
  });

  test("live readings: within the tolerances, or named; a reading one side lacks is not compared", () => {
    expect(compareLive(ours(), smi)).toEqual([]);
    const [a, b] = ours();
    expect(compareLive([{ ...a!, temperature_c: 40, power_w: 200, memory_used_mib: 9000 }, { ...b!, power_w: 500 }], smi)).toEqual([
      "GPU-5b2a3c1e-7d4f-4e8a-9b6c-0123456789ab: temperature 40 °C, nvidia-smi 29 °C",
      "GPU-5b2a3c1e-7d4f-4e8a-9b6c-0123456789ab: power 200 W, nvidia-smi 74.62 W",
      "GPU-5b2a3c1e-7d4f-4e8a-9b6c-0123456789ab: memory used 9000 MiB, nvidia-smi 4 MiB",
    ]);
  });
});

describe("gpu-check's GPU steps on the fake driver", () => {
  const pool = TreePool.create(2);
  afterAll(() => (pool.close(), scriptFakes({})));
  const options = parse(["--gib", "0.001"]);

  test("seal, three verifies and a changed byte caught all pass where the kernels load", async () => {
    scriptFakes({});
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    try {
      const rows = await shardSteps(options, vram, pool, 0.001);
      expect(rows.map((r) => [r.step, r.ok])).toEqual([
        ["seal 0.001 GiB", true],
        ["verify 0.001 GiB GPU tree", true],
        ["verify 0.001 GiB CPU tree", true],
        ["verify 0.001 GiB sampled", true],
        ["one byte changed, 0.001 GiB", true],
      ]);
      expect(rows[4]!.detail).toMatch(/^caught at offset 549216: the tree digest recomputed from VRAM differs/);
    } finally {
      vram.close();
    }
  });

  test("a driver refusing the tree kernels fails the GPU tree step, naming why, instead of passing on the CPU", async () => {
    scriptFakes({ module_load_error: 222 });
    const vram = CudaVram.open(bunFfi, [FAKE_CUDA], TREE_PTX);
    try {
      const rows = await shardSteps(options, vram, pool, 0.001);
      expect(rows.map((r) => [r.step, r.ok])).toEqual([["seal 0.001 GiB", true], ["verify 0.001 GiB GPU tree", false]]);
      expect(rows[1]!.detail).toContain("ran on the CPU: The CUDA driver (CUDA 12.4) refused the tree kernels' PTX (ISA 6.0, sm_50)");
    } finally {
      vram.close();
      scriptFakes({});
    }
  });
});

test("a whole run against the fake libraries: every step reported, the failures loud, exit 1", () => {
  const dir = tempDir("gpu-check-");
  try {
    const ctl = join(dir.path, "ctl");
    writeFileSync(ctl, "");
    const r = spawnSync(
      process.execPath,
      ["scripts/gpu-check.ts", "--gib", "0.001", "--nvidia-smi", join(REPO, "test/fixtures/nvidia-smi/fake-machine.sh"), "--json"],
      {
        cwd: REPO,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, GPU_BRIDGE_NVML_LIB: FAKE_NVML, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA, FAKE_GPU_CTL: ctl },
      },
    );
    const result = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { ok: boolean; rows: Row[] };
    const row = (step: string) => result.rows.find((x) => x.step === step);
    // The steps the fakes can answer pass...
    for (
      const step of [
        "inventory NVML vs nvidia-smi",
        "inventory CUDA vs nvidia-smi",
        "stats --json vs nvidia-smi timing",
        "job kernel vadd (known answer)",
        "job kernel matmul (known answer)",
        "tree kernels: portable vs native PTX",
        "seal 0.001 GiB",
        "verify 0.001 GiB GPU tree",
        "verify 0.001 GiB CPU tree",
        "verify 0.001 GiB sampled",
        "one byte changed, 0.001 GiB",
      ]
    ) expect([step, row(step)?.ok]).toEqual([step, true]);
    expect(row("tree kernels: portable vs native PTX")!.detail).toContain("portable ISA 6.0 sm_50, native ISA 8.4 sm_90");
    // ...and what they cannot is a FAIL in the table, never a skip: the fake NVML's energy
    // counter stands still; this host has no /dev/nvidia0 for cdi generate.
    expect(row("live stats vs nvidia-smi")).toMatchObject({
      ok: false,
      detail: expect.stringContaining("the energy counter did not move"),
    });
    expect(row("cdi generate + validate")?.ok).toBe(false);
    expect(row("doctor --json")).toBeDefined();
    expect(result.ok).toBe(false);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("steps FAILED");
  } finally {
    dir.cleanup();
  }
}, 120_000);

test("the fake nvidia-smi matches what the fake libraries report (so the whole run compares like with like)", () => {
  const text = spawnSync(join(REPO, "test/fixtures/nvidia-smi/fake-machine.sh"), { encoding: "utf8" }).stdout;
  expect(parseSmi(text).map((g) => g.uuid)).toEqual([
    "GPU-11111111-2222-3333-4444-55556666aaaa",
    "GPU-99999999-8888-7777-6666-55554444bbbb",
  ]);
});
