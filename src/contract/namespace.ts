/**
 * The `/gpu` namespace the bridge mirrors into the VM: one node per GPU with its four text
 * payloads, the model catalog and the telemetry descriptor. Both `--list` and the snapshot
 * are renderings of this one value.
 */
import { type GpuInfo, infoPayload, seedCtl } from "./info.ts";
import type { ModelCatalog, ModelEntry } from "./models.ts";
import { TELEMETRY_DESCRIPTOR } from "./telemetry-schema.ts";

/** One GPU as the VM sees it. */
export interface NodePayloads {
  readonly id: string;
  readonly info: string;
  readonly ctl: string;
  readonly lease: string;
  readonly status: string;
}

/** Everything one snapshot carries. */
export interface Namespace {
  readonly nodes: readonly NodePayloads[];
  readonly active: string;
  readonly models: readonly ModelEntry[];
  readonly telemetrySchema: string;
}

/** Per-GPU logs that replace the seeds once leases and jobs exist. */
export interface NodeLogs {
  readonly ctl?: string;
  readonly lease?: string;
  readonly status?: string;
}

/**
 * Builds the namespace from the inventory and catalog; `logs` overrides the seeded payloads.
 * A loop rather than `map`, which JavaScriptCore compiles on first use (see `renderList`).
 */
export function buildNamespace(
  gpus: readonly GpuInfo[],
  catalog: ModelCatalog,
  logs?: (id: string) => NodeLogs | undefined,
): Namespace {
  const nodes: NodePayloads[] = [];
  for (const gpu of gpus) {
    const l = logs?.(gpu.id);
    nodes.push({
      id: gpu.id,
      info: infoPayload(gpu),
      ctl: l?.ctl ?? seedCtl(gpu.id),
      lease: l?.lease ?? "",
      status: l?.status ?? "",
    });
  }
  return { nodes, active: catalog.active, models: catalog.models, telemetrySchema: TELEMETRY_DESCRIPTOR };
}
