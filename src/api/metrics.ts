/**
 * Prometheus text exposition: per-GPU gauges under the DCGM exporter's names and labels, so
 * existing dashboards work, and the bridge's own counters. A field the hardware does not report
 * has no sample at all (never a made-up zero).
 */
import type { GpuStats } from "../inventory/stats.ts";
import type { PublisherStats } from "../console/publisher.ts";
import type { Lease } from "../lease/types.ts";

export interface MetricsInput {
  readonly hostname: string;
  readonly version: string;
  readonly stats: readonly GpuStats[];
  readonly publisher: PublisherStats | null;
  readonly leases: readonly Lease[];
  readonly jobs: Readonly<Record<string, number>>;
  /** Finished jobs' results held in memory for the API. */
  readonly jobResults?: { readonly count: number; readonly bytes: number };
  readonly telemetry?: {
    readonly spooledRecords: number;
    readonly spooledBytes: number;
    readonly forwarded: number;
    readonly dropped: number;
    /** Seconds the oldest record not yet forwarded has waited (0: none waits). */
    readonly oldestWaitingS: number;
    /** Times forwarding was seen stuck while records waited and the console was up. */
    readonly stalls: number;
  };
  /** The record of changes: how many of each type, and the event streams. */
  readonly changes?: {
    readonly counts: ReadonlyMap<string, number>;
    readonly clients: number;
    readonly dropped: number;
  };
}

const SPECIAL = /[\\"\n]/;
const escape = (v: string) => (SPECIAL.test(v) ? v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : v);
const labels = (l: Record<string, string>) => `{${Object.entries(l).map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`;

/**
 * The per-GPU section depends only on the stats poll, and a poll's array is shared for its
 * whole cache window (500 ms): render it once per poll, not once per scrape.
 */
const gpuSections = new WeakMap<readonly GpuStats[], { hostname: string; text: string }>();

/** Renders the whole /metrics page. */
export function renderMetrics(m: MetricsInput): string {
  let gpu = gpuSections.get(m.stats);
  if (gpu === undefined || gpu.hostname !== m.hostname) {
    gpu = { hostname: m.hostname, text: renderGpuSection(m.stats, m.hostname) };
    gpuSections.set(m.stats, gpu);
  }
  return gpu.text + renderBridgeSection(m);
}

/** Appends one metric family to `out`; samples carry their label text ready-made. */
function family(out: string[], name: string, type: string, help: string, samples: [string, number | null][]): void {
  const present = samples.filter((s): s is [string, number] => s[1] !== null && Number.isFinite(s[1]));
  if (present.length === 0 && type !== "counter") return;
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [l, v] of present) out.push(`${name}${l} ${v}`);
}

const one = (l: Record<string, string> = {}) => (Object.keys(l).length === 0 ? "" : labels(l));

function renderGpuSection(stats: readonly GpuStats[], hostname: string): string {
  const out: string[] = [];
  const gpuLabels = stats.map((s) =>
    labels({
      gpu: s.id.replace(/^GPU-/, ""),
      UUID: s.uuid ?? "",
      pci_bus_id: s.pci_bus_id ?? "",
      device: `nvidia${s.id.replace(/^GPU-/, "")}`,
      modelName: s.name,
      Hostname: hostname,
    })
  );
  const per = (pick: (s: GpuStats) => number | null) => stats.map((s, i) => [gpuLabels[i]!, pick(s)] as [string, number | null]);
  family(out, "DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", per((s) => s.utilization_gpu_pct));
  family(out, "DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", per((s) => s.utilization_memory_pct));
  family(out, "DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", per((s) => s.memory_used_mib));
  family(out, "DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", per((s) => s.memory_free_mib));
  family(out, "DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", per((s) => s.temperature_c));
  family(out, "DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", per((s) => s.power_w));
  family(out, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).", per((s) => s.energy_mj));
  family(out, "DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", per((s) => s.clock_sm_mhz ?? s.clock_graphics_mhz));
  family(out, "DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", per((s) => s.clock_memory_mhz));
  family(out, "gpu_bridge_gpus", "gauge", "GPUs in the inventory.", [[one(), stats.length]]);
  return out.length === 0 ? "" : out.join("\n") + "\n";
}

function renderBridgeSection(m: MetricsInput): string {
  const out: string[] = [];
  family(out, "gpu_bridge_info", "gauge", "Build information.", [[one({ version: m.version }), 1]]);
  const p = m.publisher;
  if (p !== null) {
    family(out, "gpu_bridge_console_connected", "gauge", "1 while connected to the Cohesix console as queen.", [[
      one(),
      p.state === "connected" ? 1 : 0,
    ]]);
    family(out, "gpu_bridge_publishes_total", "counter", "Snapshots published and acknowledged.", [[one(), p.publishes]]);
    family(out, "gpu_bridge_publish_failures_total", "counter", "Publish attempts that failed.", [[one(), p.failures]]);
    family(out, "gpu_bridge_reconnects_total", "counter", "Reconnections to the console.", [[one(), p.reconnects]]);
    const h = p.durations;
    out.push("# HELP gpu_bridge_publish_duration_seconds Time from the first line of a publish to its last ack.");
    out.push("# TYPE gpu_bridge_publish_duration_seconds histogram");
    h.bounds.forEach((b, i) => out.push(`gpu_bridge_publish_duration_seconds_bucket{le="${b}"} ${h.counts[i]}`));
    out.push(`gpu_bridge_publish_duration_seconds_bucket{le="+Inf"} ${h.count}`);
    out.push(`gpu_bridge_publish_duration_seconds_sum ${h.sum}`, `gpu_bridge_publish_duration_seconds_count ${h.count}`);
  }
  const byGpu = new Map<string, { n: number; mem: number }>();
  for (const s of m.stats) byGpu.set(s.id, { n: 0, mem: 0 });
  for (const l of m.leases) {
    const g = byGpu.get(l.gpu_id) ?? { n: 0, mem: 0 };
    byGpu.set(l.gpu_id, { n: g.n + 1, mem: g.mem + l.mem_mb });
  }
  family(out, "gpu_bridge_leases_active", "gauge", "Live leases.", [...byGpu].map(([gpu, g]) => [one({ gpu_id: gpu }), g.n]));
  family(
    out,
    "gpu_bridge_leased_memory_mib",
    "gauge",
    "Memory held by live leases (in MiB).",
    [...byGpu].map(([gpu, g]) => [one({ gpu_id: gpu }), g.mem]),
  );
  family(out, "gpu_bridge_jobs", "gauge", "Known jobs by state.", Object.entries(m.jobs).map(([state, n]) => [one({ state }), n]));
  if (m.jobResults !== undefined) {
    family(out, "gpu_bridge_job_results", "gauge", "Finished jobs whose result is held in memory.", [[one(), m.jobResults.count]]);
    family(out, "gpu_bridge_job_results_bytes", "gauge", "Bytes of job results held in memory.", [[one(), m.jobResults.bytes]]);
  }
  const ch = m.changes;
  if (ch !== undefined) {
    family(
      out,
      "gpu_bridge_changes_total",
      "counter",
      "Changes recorded since start, by type (the events and the audit trail read them).",
      [...ch.counts].map(([type, n]) => [one({ type }), n]),
    );
    family(out, "gpu_bridge_event_clients", "gauge", "Open event streams (GET /v1/events).", [[one(), ch.clients]]);
    family(out, "gpu_bridge_event_clients_dropped_total", "counter", "Event streams closed because their client fell too far behind.", [[
      one(),
      ch.dropped,
    ]]);
  }
  const t = m.telemetry;
  if (t !== undefined) {
    family(out, "gpu_bridge_telemetry_spooled_records", "gauge", "Telemetry records in the local spool.", [[one(), t.spooledRecords]]);
    family(out, "gpu_bridge_telemetry_spooled_bytes", "gauge", "Bytes of the local telemetry spool.", [[one(), t.spooledBytes]]);
    family(out, "gpu_bridge_telemetry_forwarded_total", "counter", "Telemetry records acknowledged by the Queen.", [[one(), t.forwarded]]);
    family(
      out,
      "gpu_bridge_telemetry_dropped_total",
      "counter",
      "Telemetry records dropped by the spool's size cap or lost to damaged frames.",
      [[one(), t.dropped]],
    );
    family(
      out,
      "gpu_bridge_telemetry_oldest_unforwarded_age_seconds",
      "gauge",
      "How long the oldest telemetry record not yet forwarded has waited (0: none waits).",
      [[one(), t.oldestWaitingS]],
    );
    family(
      out,
      "gpu_bridge_telemetry_forward_stalls_total",
      "counter",
      "Times forwarding made no progress for the stall interval while records waited and the console was up.",
      [[one(), t.stalls]],
    );
  }
  return out.join("\n") + "\n";
}
