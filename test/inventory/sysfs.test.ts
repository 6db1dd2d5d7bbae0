import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cudaVersionText, normalizePciBusId } from "../../src/inventory/pci.ts";
import { findGpuDevfreq, gpuThermalC, meminfo, nvidiaDriverVersion, sampleJetsonGpu, tegraRelease } from "../../src/inventory/sysfs.ts";
import { tempDir } from "../helpers.ts";
import { ORIN_ROOT } from "./fakes.ts";

describe("normalizePciBusId()", () => {
  test("makes NVML's and CUDA's spellings equal", () => {
    expect(normalizePciBusId("00000000:65:00.0")).toBe("0000:65:00.0");
    expect(normalizePciBusId("0000:65:00.0")).toBe("0000:65:00.0");
    expect(normalizePciBusId("00000001:B3:1F.0")).toBe("0001:b3:1f.0");
    expect(normalizePciBusId("not a bus id")).toBeNull();
  });
});

describe("cudaVersionText()", () => {
  test("turns 1000*major + 10*minor into major.minor", () => {
    expect(cudaVersionText(12060)).toBe("12.6");
    expect(cudaVersionText(10020)).toBe("10.2");
    expect(cudaVersionText(0)).toBe("unknown");
  });
});

describe("Jetson sysfs", () => {
  test("reads the fake Orin tree", () => {
    expect(findGpuDevfreq(ORIN_ROOT)).toBe("/sys/class/devfreq/17000000.gpu");
    expect(sampleJetsonGpu(ORIN_ROOT)).toEqual({
      loadPct: 42.3,
      curHz: 918000000,
      minHz: 306000000,
      maxHz: 918000000,
      governor: "nvhost_podgov",
      temperatureC: 45.5,
    });
    expect(meminfo(ORIN_ROOT)).toEqual({ totalKb: 7620332, availableKb: 5120000 });
    expect(tegraRelease(ORIN_ROOT)).toBe("R36.3.0");
  });

  let root: { path: string; cleanup: () => void };
  beforeEach(() => (root = tempDir("gbh-sys-")));
  afterEach(() => root.cleanup());

  test("a disabled thermal sensor (-256 °C) and missing files read as null", () => {
    const zone = join(root.path, "sys/devices/virtual/thermal/thermal_zone3");
    mkdirSync(zone, { recursive: true });
    writeFileSync(join(zone, "type"), "GPU-therm\n");
    writeFileSync(join(zone, "temp"), "-256000\n");
    expect(gpuThermalC(root.path)).toBeNull();
    expect(sampleJetsonGpu(root.path)).toEqual({
      loadPct: null,
      curHz: null,
      minHz: null,
      maxHz: null,
      governor: null,
      temperatureC: null,
    });
    expect(meminfo(root.path)).toEqual({ totalKb: null, availableKb: null });
    expect(tegraRelease(root.path)).toBeNull();
  });

  test("reads the kernel module's version from /proc/driver/nvidia/version", () => {
    mkdirSync(join(root.path, "proc/driver/nvidia"), { recursive: true });
    writeFileSync(
      join(root.path, "proc/driver/nvidia/version"),
      "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build  (dvs-builder@U16)\n",
    );
    expect(nvidiaDriverVersion(root.path)).toBe("560.35.03");
  });
});
