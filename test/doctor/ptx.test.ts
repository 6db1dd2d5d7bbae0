/** The PTX verdicts: headers parsed from the shipped modules, ISA against the driver, target against the GPU. */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ptxChecks } from "../../src/doctor/gpu-checks.ts";
import { cudaNumber, jitVerdict, parsePtxHeader, PTX_ISA_MIN_CUDA } from "../../src/doctor/ptx.ts";
import { shippedPtx } from "../../src/doctor/ptx-shipped.ts";
import { REPO } from "../helpers.ts";

const header = (isa: string, target: string, entries = ["k"]) => ({ isa, target, entries });

describe("parsePtxHeader()", () => {
  test("reads .version, .target and the entry names; null without a header", () => {
    const text = "//\n// x\n.version 6.5\n.target sm_53\n.address_size 64\n.visible .entry vadd(\n.param .u64 a\n)\n.entry other(\n)";
    expect(parsePtxHeader(text)).toEqual({ isa: "6.5", target: "sm_53", entries: ["vadd", "other"] });
    expect(parsePtxHeader(".target sm_53\n")).toBeNull();
    expect(parsePtxHeader("// .version 9.9 in a comment only\n.target sm_50\n")).toBeNull();
  });
});

describe("jitVerdict()", () => {
  test("the Nano (cc 5.3, CUDA 10.2) takes ISA 6.5 / sm_53 and refuses ISA 7.0 / sm_80, saying why", () => {
    expect(jitVerdict(header("6.5", "sm_53"), "5.3", cudaNumber("10.2")).ok).toBe(true);
    const v = jitVerdict(header("7.0", "sm_80"), "5.3", cudaNumber("10.2"));
    expect(v).toEqual({ ok: false, why: ".target sm_80 needs at least compute capability 8.0; this GPU is 5.3" });
    expect(jitVerdict(header("7.0", "sm_53"), "5.3", cudaNumber("10.2")))
      .toEqual({ ok: false, why: "PTX ISA 7.0 needs a CUDA 11.0 driver; this one is CUDA 10.2" });
  });

  test("a lower target JITs on newer GPUs; an arch-specific target only on its own", () => {
    expect(jitVerdict(header("6.0", "sm_50"), "9.0", cudaNumber("12.4")).ok).toBe(true);
    expect(jitVerdict(header("8.0", "sm_90a"), "9.0", cudaNumber("12.4")).ok).toBe(true);
    expect(jitVerdict(header("8.0", "sm_90a"), "10.0", cudaNumber("12.8")).ok).toBe(false);
    expect(jitVerdict(header("6.5", "sm_75"), "7.2", cudaNumber("11.4")).ok).toBe(false);
  });

  test("an ISA the table does not know is refused, not assumed", () => {
    expect(jitVerdict(header("99.0", "sm_50"), "9.0", cudaNumber("13.0")).ok).toBe(false);
  });

  test("the table rises with the ISA: every newer ISA needs the same or a newer CUDA", () => {
    const rows = Object.entries(PTX_ISA_MIN_CUDA).map(([isa, cuda]) => [cudaNumber(isa), cudaNumber(cuda)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < rows.length; i++) expect(rows[i]![1]).toBeGreaterThan(rows[i - 1]![1]);
    expect(PTX_ISA_MIN_CUDA["6.5"]).toBe("10.2");
  });
});

describe("shippedPtx()", () => {
  test("reads every shipped module's header at run time: it matches the .ptx files in the repository", () => {
    const files = ["src/job/ptx/generated", "src/vram/ptx/generated"].flatMap((d) =>
      readdirSync(join(REPO, d)).filter((n) => n.endsWith(".ptx")).map((n) => readFileSync(join(REPO, d, n), "utf8"))
    );
    const fromFiles = files.map((t) => parsePtxHeader(t)!).map((h) => `${h.entries.join(",")} ${h.isa} ${h.target}`).sort();
    const embedded = shippedPtx().map((m) => `${m.entries.join(",")} ${m.isa} ${m.target}`).sort();
    expect(embedded).toEqual(fromFiles);
    expect(embedded.length).toBeGreaterThanOrEqual(3);
  });
});

describe("ptxChecks()", () => {
  const gpu = (label: string, cc: string) => ({ label, cc, integrated: false, vmm: 1, posixFd: 1, mig: null });
  const mod = (name: string, isa: string, target: string, entries: string[]) => ({ name, use: "u", isa, target, entries });

  test("variants of the same kernels: one that JITs is enough; none fails the GPU, naming each reason", () => {
    const modules = [mod("fast", "7.0", "sm_80", ["tree"]), mod("portable", "6.5", "sm_53", ["tree"])];
    const ok = ptxChecks(modules, [gpu("nano", "5.3")], cudaNumber("10.2")).filter((c) => c.name.startsWith("nano"));
    expect(ok).toEqual([expect.objectContaining({ status: "ok", detail: expect.stringContaining("portable") })]);
    const bad = ptxChecks([modules[0]!], [gpu("nano", "5.3")], cudaNumber("10.2")).filter((c) => c.name.startsWith("nano"));
    expect(bad).toEqual([expect.objectContaining({ status: "fail", fix: expect.stringContaining("driver") })]);
  });

  test("without a driver version the JIT question is unknown, said as such", () => {
    expect(ptxChecks([mod("m", "6.0", "sm_50", ["k"])], [gpu("g", "8.0")], null).at(-1)).toMatchObject({
      status: "warn",
      detail: expect.stringContaining("unknown"),
    });
  });
});
