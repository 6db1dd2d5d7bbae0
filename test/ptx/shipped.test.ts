/**
 * Every PTX module the repository and the binary ship: old enough a header for the Jetson Nano's
 * driver (CUDA 10.2 JIT-compiles ISA <= 6.5; the Nano is sm_53), the embedded strings equal to
 * the generated files, and ptxas really checking instructions against that header (which is what
 * makes lowering nvcc's header safe). `make check-ptx` assembles each file for sm_75, sm_87 and
 * sm_90 and checks the files are what their .cu sources generate.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { jitVerdict, maxPtxIsa, minIsaForTarget, parsePtxHeader, PtxHeaderError, withHeader } from "../../ffi/ptx-header.ts";
import { MATMUL_PTX, VADD_PTX } from "../../src/job/ptx/builtin.ts";
import { TREE_PTX } from "../../src/vram/ptx/generated/tree-ptx.ts";
import { REPO, tempDir } from "../helpers.ts";

/** The oldest driver and GPU the shipped kernels must load on: the Jetson Nano on JetPack 4.6. */
const NANO = { ccMajor: 5, ccMinor: 3, driverVersion: 10020 };

function files(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (["node_modules", "dist", "build", ".git"].includes(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p, suffix));
    else if (e.name.endsWith(suffix)) out.push(p);
  }
  return out;
}

const shipped = files(REPO, ".ptx");
const embedded: Record<string, string> = {
  "src/job/ptx/generated/vadd.ptx": VADD_PTX,
  "src/job/ptx/generated/matmul.ptx": MATMUL_PTX,
  "src/vram/ptx/generated/sha256_tree.ptx": TREE_PTX,
};

describe("every shipped PTX", () => {
  test("the repository's .ptx files are the three generated modules the binary embeds", () => {
    expect(shipped.map((f) => relative(REPO, f)).sort()).toEqual(Object.keys(embedded).sort());
  });

  for (const f of shipped) {
    const name = relative(REPO, f);
    test(`${name}: ISA <= 6.5 and .target <= sm_53, so the Nano's CUDA 10.2 driver JIT-compiles it`, () => {
      const h = parsePtxHeader(readFileSync(f, "utf8"));
      expect(h.isa).toBeLessThanOrEqual(65);
      expect(h.sm).toBeLessThanOrEqual(53);
      expect(jitVerdict(h, NANO)).toEqual({ ok: true });
    });
    test(`${name}: says it is generated, from what, and how to regenerate it`, () => {
      const head = readFileSync(f, "utf8").slice(0, 600);
      expect(head).toMatch(
        /GENERATED from src\/[a-z/]+\/[a-z0-9_]+\.cu by scripts\/gen-ptx\.sh\n\/\/ \(make ptx\): nvcc -ptx -arch=compute_75/,
      );
    });
  }

  test("every PTX string in the product code declares ISA <= 6.5 and .target <= sm_53", () => {
    // Catches PTX embedded by hand anywhere, not only in the generated modules.
    const found: string[] = [];
    for (const f of [...files(join(REPO, "src"), ".ts"), ...files(join(REPO, "ffi"), ".ts")]) {
      const text = readFileSync(f, "utf8");
      for (const m of text.matchAll(/\\n\.version (\d+)\.(\d+)\\n\.target sm_(\d+)/g)) {
        found.push(relative(REPO, f));
        expect(Number(m[1]) * 10 + Number(m[2])).toBeLessThanOrEqual(65);
        expect(Number(m[3])).toBeLessThanOrEqual(53);
      }
    }
    expect(found.sort()).toEqual([
      "src/job/ptx/generated/job-ptx.ts",
      "src/job/ptx/generated/job-ptx.ts",
      "src/vram/ptx/generated/tree-ptx.ts",
    ]);
  });

  test("the embedded modules are the generated .ptx files exactly (make ptx rewrites both)", () => {
    for (const [file, text] of Object.entries(embedded)) expect(text).toBe(readFileSync(join(REPO, file), "utf8"));
  });

  test("each module defines its kernels with the parameters their callers pass", () => {
    const params = (ptx: string, name: string) =>
      [...ptx.slice(ptx.indexOf(`.entry ${name}(`)).split(")")[0]!.matchAll(/\.param \.(u\d+)/g)].map((m) => m[1]);
    expect(params(TREE_PTX, "vram_tree_leaves")).toEqual(["u64", "u64", "u64", "u32"]);
    expect(params(TREE_PTX, "vram_tree_level")).toEqual(["u64", "u64", "u32"]);
    expect(params(VADD_PTX, "vadd")).toEqual(["u64", "u64", "u64", "u32"]);
    expect(params(MATMUL_PTX, "matmul")).toEqual(["u64", "u64", "u64", "u32"]);
    expect(VADD_PTX).not.toContain(".entry matmul(");
    expect(MATMUL_PTX).not.toContain(".entry vadd(");
  });
});

describe("PTX headers", () => {
  test("parsePtxHeader reads .version and .target after comments; a header without them is named", () => {
    expect(parsePtxHeader("//\n// x\n\n.version 6.5\n.target sm_53\n.address_size 64\n")).toEqual({
      version: "6.5",
      isa: 65,
      target: "sm_53",
      sm: 53,
    });
    expect(parsePtxHeader(".version 8.0\n.target sm_90a\n").sm).toBe(90);
    expect(() => parsePtxHeader(".target sm_50\n")).toThrow(PtxHeaderError);
    expect(() => parsePtxHeader(".version 6.0\n")).toThrow("`.target sm_<NN>`");
  });

  test("a driver JITs ISA up to its CUDA release's; a GPU older than .target refuses", () => {
    expect(maxPtxIsa(10020)).toBe(65);
    expect(maxPtxIsa(12040)).toBe(84);
    expect(maxPtxIsa(12060)).toBe(85);
    expect(maxPtxIsa(8000)).toBeNull();
    const old = parsePtxHeader(".version 7.0\n.target sm_80\n");
    expect(jitVerdict(old, NANO)).toEqual({ ok: false, reason: "the GPU (compute capability 5.3) is older than the PTX's .target sm_80" });
    expect(jitVerdict(old, { ccMajor: 9, ccMinor: 0, driverVersion: 10020 })).toEqual({
      ok: false,
      reason: "the driver (CUDA 10.2) JIT-compiles PTX ISA up to 6.5, and the PTX is ISA 7.0",
    });
    expect(jitVerdict(old, { ccMajor: 9, ccMinor: 0, driverVersion: 12040 })).toEqual({ ok: true });
  });
});

const ptxas = Bun.which("ptxas");
describe.skipIf(ptxas === null)("ptxas checks instructions against the header (skipped where ptxas is absent)", () => {
  // If ptxas did not refuse these, assembling the lowered files for sm_75+ would prove nothing
  // about sm_50: these plant one instruction newer than the header into the shipped vadd.
  const planted: [string, string][] = [
    ["redux.sync.add.u32 %r26, %r26, -1;", "requires .target sm_80"],
    ["dp4a.u32.u32 %r26, %r26, %r26, %r26;", "requires .target sm_61"],
    ["activemask.b32 %r26;", "requires PTX ISA .version 6.2"],
  ];
  for (const [insn, error] of planted) {
    test(`${insn.split(" ")[0]} under the shipped header: "${error}"`, () => {
      const dir = tempDir("ptx-");
      try {
        const at = VADD_PTX.indexOf("\tret;");
        expect(at).toBeGreaterThan(0);
        const file = join(dir.path, "planted.ptx");
        writeFileSync(file, VADD_PTX.slice(0, at) + `\t${insn}\n` + VADD_PTX.slice(at));
        const r = Bun.spawnSync([ptxas!, "-arch=sm_90", file, "-o", "/dev/null"]);
        expect(r.stderr.toString()).toContain(error);
        expect(r.exitCode).not.toBe(0);
        writeFileSync(file, VADD_PTX);
        expect(Bun.spawnSync([ptxas!, "-arch=sm_90", file, "-o", "/dev/null"]).exitCode).toBe(0);
      } finally {
        dir.cleanup();
      }
    }, 60_000);
  }
});

/** The `.text.*` sections (the kernels' machine code) of a cubin, an ELF64 file, by name. */
function textSections(elf: Uint8Array): Map<string, string> {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = Number(v.getBigUint64(0x28, true));
  const [size, count, names] = [v.getUint16(0x3a, true), v.getUint16(0x3c, true), v.getUint16(0x3e, true)];
  const section = (i: number) => ({
    name: v.getUint32(shoff + i * size, true),
    offset: Number(v.getBigUint64(shoff + i * size + 0x18, true)),
    size: Number(v.getBigUint64(shoff + i * size + 0x20, true)),
  });
  const strtab = section(names);
  const nameOf = (at: number) => {
    let end = strtab.offset + at;
    while (elf[end] !== 0) end++;
    return new TextDecoder().decode(elf.subarray(strtab.offset + at, end));
  };
  const out = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const s = section(i);
    const name = nameOf(s.name);
    if (name.startsWith(".text.")) out.set(name, Buffer.from(elf.subarray(s.offset, s.offset + s.size)).toString("hex"));
  }
  return out;
}

describe.skipIf(ptxas === null)("a newer header buys nothing (skipped where ptxas is absent)", () => {
  // The driver JIT-compiles PTX for the GPU it runs on; the header only limits which instructions
  // the text may use. So the portable modules ship alone: this proves the same body under each
  // GPU's own target and the newest ISA for it assembles to the same machine code. Should a
  // kernel ever use an instruction the old header forbids, this fails and a second module is due.
  for (const sm of [75, 87, 90]) {
    test(`sm_${sm}: the shipped modules and the same body under .target sm_${sm} give identical kernels`, () => {
      const dir = tempDir("ptx-");
      try {
        for (const [name, text] of Object.entries(embedded)) {
          const cubin = (ptx: string, tag: string) => {
            const file = join(dir.path, `${tag}.ptx`);
            writeFileSync(file, ptx);
            const r = Bun.spawnSync([ptxas!, `-arch=sm_${sm}`, file, "-o", `${file}.cubin`]);
            expect(r.stderr.toString()).toBe("");
            return textSections(readFileSync(`${file}.cubin`));
          };
          const shipped = cubin(text, "shipped");
          const native = cubin(withHeader(text, 78, sm), "native");
          expect(minIsaForTarget(sm)).toBeLessThanOrEqual(78);
          expect([name, shipped.size]).toEqual([name, name.includes("tree") ? 2 : 1]);
          expect([name, native]).toEqual([name, shipped]);
        }
      } finally {
        dir.cleanup();
      }
    }, 60_000);
  }
});
