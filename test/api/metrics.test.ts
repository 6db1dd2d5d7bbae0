import { expect, test } from "bun:test";
import { mockStats } from "../../src/inventory/mock.ts";
import { renderMetrics } from "../../src/api/metrics.ts";
import type { Lease } from "../../src/lease/types.ts";

const input = (stats = mockStats(), leases: Lease[] = []) => ({
  hostname: "edge-01",
  version: "1.0.0",
  stats,
  publisher: null,
  leases,
  jobs: { QUEUED: 0, RUNNING: 1, OK: 0, ERR: 0 },
});
const lease = {
  id: "l",
  gpu_id: "GPU-0",
  worker_id: "w",
  mem_mb: 512,
  streams: 1,
  ttl_s: 9,
  priority: 0,
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 0,
} as Lease;

test("renderMetrics() renders a poll's GPU section once, however often it is scraped", () => {
  const stats = mockStats();
  const temp = (text: string) => /DCGM_FI_DEV_GPU_TEMP\{gpu="0",[^}]*\} (\d+)\n/.exec(text)?.[1];
  expect(temp(renderMetrics(input(stats)))).toBe("45");
  // Changed in place, the same poll's array is not rendered again: the section is reused.
  Object.assign(stats[0]!, { temperature_c: 99 });
  expect(temp(renderMetrics(input(stats)))).toBe("45");
  // A new poll (a new array) is rendered afresh.
  expect(temp(renderMetrics(input([...stats])))).toBe("99");
});

test("renderMetrics() never serves stale bridge counters from a reused GPU section", () => {
  const stats = mockStats();
  expect(renderMetrics(input(stats))).toContain('gpu_bridge_leases_active{gpu_id="GPU-0"} 0');
  const withLease = renderMetrics(input(stats, [lease]));
  expect(withLease).toContain('gpu_bridge_leases_active{gpu_id="GPU-0"} 1');
  expect(withLease).toContain('gpu_bridge_leased_memory_mib{gpu_id="GPU-0"} 512');
});

test("renderMetrics() writes no sample for a field the hardware does not report", () => {
  const stats = mockStats().map((s) => ({ ...s, power_w: null }));
  const text = renderMetrics(input(stats));
  expect(text).not.toContain("DCGM_FI_DEV_POWER_USAGE");
  expect(text).toContain("# TYPE DCGM_FI_DEV_GPU_TEMP gauge");
});
