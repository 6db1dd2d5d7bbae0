/**
 * The vram_* Prometheus families (README.md, "Sealed model shards in VRAM"), per CUDA device,
 * and the bridge's own VRAM-only policy families (gpu_bridge_vram_policy_*).
 */
import type { ShardStore } from "./shards.ts";

export interface VramGpu {
  readonly gpu_id: string;
  readonly ordinal: number;
}

/** The exposition text; a GPU whose driver cannot answer has no sample (never a made-up zero). */
export function renderVramMetrics(store: ShardStore, gpus: readonly VramGpu[]): string {
  const total: string[] = [];
  const used: string[] = [];
  const avail: string[] = [];
  const shards: string[] = [];
  const violations: string[] = [];
  for (const g of gpus) {
    const l = `{gpu_device="${g.ordinal}",gpu_id="${g.gpu_id.replace(/[\\"\n]/g, "_")}"}`;
    const u = store.usedBytes(g.ordinal);
    used.push(`vram_used_bytes${l} ${u.sealed}`);
    shards.push(`vram_sealed_shards${l} ${u.shards}`);
    violations.push(`gpu_bridge_vram_policy_violations_total${l} ${store.counters.policy.get(g.ordinal) ?? 0}`);
    try {
      const m = store.backend.memInfo(g.ordinal);
      total.push(`vram_total_bytes${l} ${m.total}`);
      avail.push(`vram_available_bytes${l} ${m.free}`);
    } catch {
      // the driver did not answer for this device: leave its samples out
    }
  }
  const out: string[] = [];
  const family = (name: string, type: string, help: string, lines: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  family("vram_total_bytes", "gauge", "Device memory in total, as the driver reports it.", total);
  family("vram_used_bytes", "gauge", "Device memory held by sealed shards (the bridge's own accounting).", used);
  family("vram_available_bytes", "gauge", "Device memory free, as the driver reports it.", avail);
  family("vram_sealed_shards", "gauge", "Sealed shards held.", shards);
  const counter = (name: string, help: string, m: Map<string, number>, results: string[]) =>
    family(name, "counter", help, results.map((r) => `${name}{result="${r}"} ${m.get(r) ?? 0}`));
  counter("vram_seal_operations_total", "Seal attempts by result.", store.counters.seal, ["ok", "refused", "failed"]);
  counter("vram_verify_operations_total", "Verifications by result.", store.counters.verify, ["ok", "fail"]);
  family(
    "gpu_bridge_vram_policy_violations_total",
    "counter",
    "VRAM-only policy violations found: at allocation, at start-up or by the periodic check.",
    violations,
  );
  const checked = store.policyCheckedAt;
  family(
    "gpu_bridge_vram_policy_last_check_timestamp_seconds",
    "gauge",
    "When the VRAM-only policy was last checked over every sealed shard (Unix seconds).",
    checked === null ? [] : [`gpu_bridge_vram_policy_last_check_timestamp_seconds ${checked / 1000}`],
  );
  return out.join("\n") + "\n";
}
