/** The device plugin's Prometheus lines (appended to GET /metrics): its devices' health and its counters. */
import type { PluginGpu } from "./devices.ts";

export interface PluginCounters {
  readonly registered: boolean;
  readonly registrations: number;
  readonly allocations: number;
  readonly allocateErrors: number;
  readonly released: number;
  readonly rebuilt: number;
}

const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** Renders the plugin's section; `healthChanges` counts each GPU's turns to Unhealthy and back. */
export function renderPluginMetrics(
  resource: string,
  gpus: readonly PluginGpu[],
  c: PluginCounters,
  healthChanges: ReadonlyMap<string, { unhealthy: number; healthy: number }>,
): string {
  const r = `resource="${label(resource)}"`;
  let out = "# HELP gpu_bridge_k8s_device_healthy Whether the device plugin advertises the GPU Healthy (1) or Unhealthy (0).\n" +
    "# TYPE gpu_bridge_k8s_device_healthy gauge\n";
  for (const g of gpus) out += `gpu_bridge_k8s_device_healthy{gpu="${label(g.gpuId)}",UUID="${label(g.uuid)}",${r}} ${g.healthy ? 1 : 0}\n`;
  out += "# HELP gpu_bridge_k8s_health_changes_total Times a GPU turned Unhealthy, or Healthy again.\n" +
    "# TYPE gpu_bridge_k8s_health_changes_total counter\n";
  for (const [gpu, n] of healthChanges) {
    out += `gpu_bridge_k8s_health_changes_total{gpu="${label(gpu)}",to="unhealthy"} ${n.unhealthy}\n`;
    out += `gpu_bridge_k8s_health_changes_total{gpu="${label(gpu)}",to="healthy"} ${n.healthy}\n`;
  }
  const counter = (name: string, help: string, v: number, type = "counter") =>
    `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name}{${r}} ${v}\n`;
  return out +
    counter("gpu_bridge_k8s_registered", "Whether the kubelet took the plugin's last registration.", c.registered ? 1 : 0, "gauge") +
    counter(
      "gpu_bridge_k8s_registrations_total",
      "Registrations the kubelet took (one more after each kubelet restart).",
      c.registrations,
    ) +
    counter("gpu_bridge_k8s_allocations_total", "Allocate calls answered with leases.", c.allocations) +
    counter("gpu_bridge_k8s_allocate_errors_total", "Allocate calls refused.", c.allocateErrors) +
    counter("gpu_bridge_k8s_released_total", "Leases released because no pod held their devices any more.", c.released) +
    counter("gpu_bridge_k8s_rebuilt_total", "Leases rebuilt from PodResources for devices pods still held.", c.rebuilt);
}
