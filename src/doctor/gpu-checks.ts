/**
 * Per-GPU checks: does each shipped PTX module JIT on it (compute capability and driver CUDA
 * version against the module's header), can sealed shards be shared (VMM and POSIX-fd handles),
 * MIG mode, and what the VRAM-only policy is worth (caps.ts reports MPS and the MIG devices).
 */
import { vramOnlyPolicy } from "../vram/attest.ts";
import { jitVerdict } from "./ptx.ts";
import type { ShippedPtx } from "./ptx-shipped.ts";
import { type Check, check } from "./types.ts";

/** A GPU as the per-GPU checks need it. */
export interface GpuFacts {
  readonly label: string;
  readonly cc: string | null;
  readonly integrated: boolean | null;
  readonly vmm: number | null;
  readonly posixFd: number | null;
  /** From NVML: `enabled`, `disabled`, or why unknown; null without NVML. */
  readonly mig: string | null;
}

/**
 * The PTX verdicts: one line per module and GPU. Modules holding the same kernels are variants
 * (a fast one for new GPUs, a portable one): a GPU needs one variant of each to JIT.
 */
export function ptxChecks(modules: readonly ShippedPtx[], gpus: readonly GpuFacts[], driverCuda: number | null): Check[] {
  const out: Check[] = [];
  for (const m of modules) {
    out.push(check("ptx", m.name, m.isa === "?" ? "fail" : "info", `.version ${m.isa}, .target ${m.target}: ${m.use}`));
  }
  if (driverCuda === null) {
    out.push(check("ptx", "JIT", "warn", "unknown: no driver answered its CUDA version", "load libcuda (or NVML) to check the PTX"));
    return out;
  }
  const groups = new Map<string, ShippedPtx[]>();
  for (const m of modules) {
    const key = [...m.entries].sort().join(",");
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  for (const g of gpus) {
    if (g.cc === null) {
      out.push(check("ptx", g.label, "warn", "unknown: the driver did not say the compute capability", "check the driver"));
      continue;
    }
    for (const variants of groups.values()) {
      const verdicts = variants.map((m) => ({
        m,
        v: m.isa === "?" ? { ok: false, why: "no PTX header" } : jitVerdict(m, g.cc!, driverCuda),
      }));
      const good = verdicts.find((x) => x.v.ok);
      const names = variants.map((m) => m.name).join(" | ");
      out.push(check(
        "ptx",
        `${g.label}: ${names}`,
        good !== undefined ? "ok" : "fail",
        good !== undefined
          ? `JITs: ${variants.length > 1 ? `${good.m.name}, ` : ""}${good.v.why}`
          : verdicts.map((x) => (variants.length > 1 ? `${x.m.name}: ${x.v.why}` : x.v.why)).join("; "),
        `${variants[0]!.use} cannot run on this GPU: update the NVIDIA driver (JetPack on a Jetson), or use a build whose PTX targets it`,
      ));
    }
  }
  return out;
}

/** VMM and POSIX-fd handles (sharing a sealed shard with another process), MIG, and the VRAM-only policy. */
export function sharingChecks(gpus: readonly GpuFacts[]): Check[] {
  const out: Check[] = [];
  for (const g of gpus) {
    const vmm = g.vmm === null ? "unknown" : g.vmm === 1 ? "yes" : "no";
    const fd = g.posixFd === null ? "unknown" : g.posixFd === 1 ? "yes" : "no";
    out.push(check(
      "sharing",
      `${g.label} VMM/IPC`,
      g.vmm === 1 && g.posixFd === 1 ? "ok" : "warn",
      `virtual memory management ${vmm}, POSIX fd handles ${fd}`,
      "sealed shards on this GPU cannot be handed to another process; jobs must run in the bridge's own process",
    ));
    out.push(check("sharing", `${g.label} MIG`, "info", g.mig ?? "unknown (NVML not loaded)"));
    if (g.integrated !== null) {
      const p = vramOnlyPolicy({ kind: "cuda", note: "" }, g.integrated);
      const detail = p.status === "enforced"
        ? `enforced: ${p.reason}`
        : `not applicable: ${p.reason}; still holds: ${(p.still_holds ?? []).join("; ")}; cannot promise: ${
          (p.cannot_promise ?? []).join("; ")
        }`;
      out.push(check("sharing", `${g.label} VRAM-only policy`, "info", detail));
    }
  }
  return out;
}
