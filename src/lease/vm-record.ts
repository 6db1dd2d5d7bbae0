/**
 * A lease record the VM wrote (`/gpu/<id>/lease`), read strictly: it is a request the bridge
 * may grant or refuse, never a fact. Exactly the contract's eight fields, each of its type and
 * range, the ids by the contract's rules, at most one console command long, and in the
 * contract's own form (keys in order, no spaces, each key once: the line the bridge itself
 * would write for it), so the line the VM's clients read is the terms the host accounts.
 */
import { gpuIdProblem, LIMITS, PRIORITY } from "../contract/limits.ts";
import { SAFE_ID_RULE } from "../contract/ids.ts";
import { byteLength } from "../util/bytes.ts";
import { leaseRecord } from "./records.ts";
import { type LeaseRequest, WORKER_ID } from "./types.ts";

/** A lease request as the VM writes it, with the state it claims. */
export interface VmLeaseRecord extends LeaseRequest {
  readonly state: "ACTIVE" | "RELEASED";
}

/** The record, or why not; `worker` is the record's worker id when that much is well-formed. */
export type ParsedVmRecord = { ok: true; record: VmLeaseRecord } | { ok: false; why: string; worker?: string };

/** The longest lease record the VM may write (the longest the bridge writes is about 230 bytes). */
export const VM_RECORD_BYTES = LIMITS.commandBytes;
const KEYS = ["schema", "state", "gpu_id", "worker_id", "mem_mb", "streams", "ttl_s", "priority"] as const;
/**
 * The contract's ranges (section 7: counts >= 1, the priority range PRIORITY). The host's own limits (the
 * longest TTL, streams per lease) are policy: a record past them is well-formed, and is refused
 * as a grant would be, so a Queen's lease the host will not hold is released in the VM.
 */
const RANGES: Readonly<Record<string, readonly [number, number]>> = {
  mem_mb: [1, Number.MAX_SAFE_INTEGER],
  streams: [1, Number.MAX_SAFE_INTEGER],
  ttl_s: [1, Number.MAX_SAFE_INTEGER],
  priority: [PRIORITY.min, PRIORITY.max],
};

/** Parses `line`, found in `/gpu/<gpuId>/lease`. */
export function parseVmLeaseRecord(line: string, gpuId: string): ParsedVmRecord {
  const size = byteLength(line);
  if (size > VM_RECORD_BYTES) return { ok: false, why: `a lease record is at most ${VM_RECORD_BYTES} bytes, got ${size}` };
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return { ok: false, why: "not JSON" };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { ok: false, why: "not a JSON object" };
  const o = raw as Record<string, unknown>;
  const worker = typeof o.worker_id === "string" && WORKER_ID.test(o.worker_id) ? o.worker_id : undefined;
  const no = (why: string): ParsedVmRecord => (worker === undefined ? { ok: false, why } : { ok: false, why, worker });
  for (const key of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(key)) return no(`unknown field ${JSON.stringify(key.slice(0, 32))}`);
  }
  for (const key of KEYS) if (!Object.hasOwn(o, key)) return no(`missing field ${key}`);
  if (o.schema !== "gpu-lease/v1") return no(`schema must be "gpu-lease/v1"`);
  if (o.state !== "ACTIVE" && o.state !== "RELEASED") return no(`state must be ACTIVE or RELEASED`);
  if (typeof o.gpu_id !== "string" || gpuIdProblem(o.gpu_id) !== null) return no(`gpu_id is not a GPU id`);
  if (o.gpu_id !== gpuId) return no(`a record for ${o.gpu_id} is in ${gpuId}'s lease file`);
  if (worker === undefined) return no(`worker_id must be ${SAFE_ID_RULE}`);
  for (const [key, [min, max]] of Object.entries(RANGES)) {
    const n = o[key];
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) return no(`${key} must be an integer from ${min} to ${max}`);
  }
  const record: VmLeaseRecord = {
    state: o.state,
    gpu_id: o.gpu_id,
    worker_id: worker,
    mem_mb: o.mem_mb as number,
    streams: o.streams as number,
    ttl_s: o.ttl_s as number,
    priority: o.priority as number,
  };
  if (leaseRecord({ ...record, id: "", granted_at: 0, expires_at: 0 }, record.state) !== line) {
    return no("not in the contract's form (its keys in order, each once, no spaces, integers as such)");
  }
  return { ok: true, record };
}

/** How `record`'s terms differ from `lease`'s, as `field a->b, …`; null when they are the same. */
export function termsDiff(
  lease: Pick<VmLeaseRecord, "mem_mb" | "streams" | "ttl_s" | "priority">,
  record: Pick<VmLeaseRecord, "mem_mb" | "streams" | "ttl_s" | "priority">,
): string | null {
  const diff = (["mem_mb", "streams", "ttl_s", "priority"] as const)
    .filter((k) => lease[k] !== record[k])
    .map((k) => `${k} ${lease[k]}->${record[k]}`);
  return diff.length === 0 ? null : diff.join(", ");
}
