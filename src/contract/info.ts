import { quote } from "./escape.ts";

/** What `/gpu/<id>/info` holds: exactly these six fields, never more (docs/protocol.md#2-gpu-info). */
export interface GpuInfo {
  readonly id: string;
  readonly name: string;
  readonly memory_mb: number;
  readonly sm_count: number;
  readonly driver_version: string;
  readonly runtime_version: string;
}

/**
 * The `/gpu/<id>/info` payload: 4-space indent, fixed key order, no trailing newline.
 * Cohesix's `coh gpu list` rejects unknown fields, so this must never grow.
 */
export function infoPayload(gpu: GpuInfo): string {
  return (
    "{\n" +
    `    "id": ${quote(gpu.id)},\n` +
    `    "name": ${quote(gpu.name)},\n` +
    `    "memory_mb": ${integer(gpu.memory_mb, "memory_mb")},\n` +
    `    "sm_count": ${integer(gpu.sm_count, "sm_count")},\n` +
    `    "driver_version": ${quote(gpu.driver_version)},\n` +
    `    "runtime_version": ${quote(gpu.runtime_version)}\n` +
    "}"
  );
}

function integer(value: number, field: string): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot format GPU info: ${field} must be a non-negative integer, got ${value}`);
  }
  return String(value);
}

/** The seeded `ctl` payload of a node with no control history. */
export function seedCtl(id: string): string {
  return `LEASE ${id}\n`;
}
