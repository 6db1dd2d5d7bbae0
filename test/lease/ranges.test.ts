/**
 * A lease's ranges have one home each (the priority range in src/contract/limits.ts, the stream
 * and TTL ceilings in src/config/limits.ts): every way a lease enters the bridge (the API's
 * grant, a control line, a record the VM wrote, the journal at start-up, the command line's
 * per-GPU cap) accepts the last value in range and refuses the first past it, naming the field
 * and the value. A copy of a bound that drifts from its home fails here.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { UsageError } from "../../src/cli/flags.ts";
import { MAX_STREAMS, MAX_TTL_S } from "../../src/config/limits.ts";
import { PRIORITY } from "../../src/contract/limits.ts";
import { parseControl } from "../../src/lease/control.ts";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { checkPriority } from "../../src/lease/ranges.ts";
import { leaseRecord } from "../../src/lease/records.ts";
import { type Lease, LeaseError, type LeaseRequest } from "../../src/lease/types.ts";
import { parseVmLeaseRecord } from "../../src/lease/vm-record.ts";
import { FakeClock, tempDir } from "../helpers.ts";

const terms = (o: Partial<LeaseRequest> = {}): LeaseRequest => ({
  gpu_id: "GPU-0",
  worker_id: "w1",
  mem_mb: 1024,
  streams: 1,
  ttl_s: 60,
  priority: 5,
  ...o,
});
const lease = (o: Partial<Lease> = {}): Lease => ({
  ...terms(),
  id: "lease-1",
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 60_000,
  ...o,
});
const manager = () =>
  new LeaseManager({ gpus: () => [{ id: "GPU-0", memory_mb: 24576 }], clock: new FakeClock(), maxStreamsPerGpu: MAX_STREAMS });

function refusal(f: () => unknown): { message: string; field: string | undefined } {
  try {
    f();
  } catch (e) {
    if (e instanceof LeaseError) return { message: e.message, field: e.field };
    throw e;
  }
  throw new Error("expected a LeaseError");
}

const dirs: { cleanup: () => void }[] = [];
afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()));
function journalLoads(entry: object): { leases: Lease[]; problems: string[] } {
  const d = tempDir();
  dirs.push(d);
  const path = join(d.path, "leases.jsonl");
  writeFileSync(path, JSON.stringify(entry) + "\n");
  return new LeaseJournal(path).load();
}

describe("the priority range", () => {
  const top = PRIORITY.max;
  const past = `priority must be an integer from ${PRIORITY.min} to ${PRIORITY.max}, got ${top + 1}`;

  test("checkPriority names the field and the value", () => {
    expect(refusal(() => checkPriority(top + 1))).toEqual({ message: past, field: "priority" });
    expect(refusal(() => checkPriority(-1, "new_priority"))).toEqual({
      message: "new_priority must be an integer from 0 to 255, got -1",
      field: "new_priority",
    });
    expect(refusal(() => checkPriority(1.5)).message).toContain("got 1.5");
    expect(() => checkPriority(PRIORITY.min)).not.toThrow();
  });

  test("a grant and a priority change take the top and refuse one more", () => {
    const m = manager();
    const l = m.grant(terms({ priority: top }));
    expect(l.priority).toBe(top);
    expect(refusal(() => m.grant(terms({ worker_id: "w2", priority: top + 1 })))).toEqual({ message: past, field: "priority" });
    expect(refusal(() => m.setPriority(l.id, top + 1))).toEqual({ message: past, field: "priority" });
  });

  test("a PRIORITY control line takes the top and refuses one more", () => {
    expect(parseControl(`PRIORITY ${top}`)).toEqual({ verb: "PRIORITY", priority: top });
    expect(refusal(() => parseControl(`PRIORITY ${top + 1}`))).toEqual({ message: past, field: "priority" });
  });

  test("a record the VM wrote takes the top and refuses one more", () => {
    const line = (priority: number) => leaseRecord(lease({ priority }), "ACTIVE");
    expect(parseVmLeaseRecord(line(top), "GPU-0").ok).toBe(true);
    expect(parseVmLeaseRecord(line(top + 1), "GPU-0")).toEqual({
      ok: false,
      why: `priority must be an integer from ${PRIORITY.min} to ${PRIORITY.max}`,
      worker: "w1",
    });
  });

  test("the journal restores the top and skips one more, in a grant and in a priority entry", () => {
    expect(journalLoads({ op: "grant", lease: lease({ priority: top }) }).leases).toHaveLength(1);
    const over = journalLoads({ op: "grant", lease: lease({ priority: top + 1 }) });
    expect(over.leases).toEqual([]);
    expect(over.problems[0]).toContain("lease.priority");
    expect(journalLoads({ op: "priority", id: "lease-1", priority: top + 1 }).problems[0]).toContain("priority");
    expect(journalLoads({ op: "priority", id: "lease-1", priority: top }).problems).toEqual([]);
  });
});

describe("the stream and TTL ceilings", () => {
  test("a grant takes MAX_STREAMS and MAX_TTL_S and refuses one more of each", () => {
    const m = manager();
    expect(m.grant(terms({ streams: MAX_STREAMS, ttl_s: MAX_TTL_S })).streams).toBe(MAX_STREAMS);
    expect(refusal(() => m.grant(terms({ worker_id: "w2", streams: MAX_STREAMS + 1 })))).toEqual({
      message: `streams must be an integer from 1 to ${MAX_STREAMS}, got ${MAX_STREAMS + 1}`,
      field: "streams",
    });
    expect(refusal(() => m.grant(terms({ worker_id: "w3", ttl_s: MAX_TTL_S + 1 })))).toEqual({
      message: `ttl_s must be an integer from 1 to ${MAX_TTL_S}, got ${MAX_TTL_S + 1}`,
      field: "ttl_s",
    });
  });

  test("the journal restores MAX_STREAMS and MAX_TTL_S and skips one more of each", () => {
    expect(journalLoads({ op: "grant", lease: lease({ streams: MAX_STREAMS, ttl_s: MAX_TTL_S }) }).leases).toHaveLength(1);
    expect(journalLoads({ op: "grant", lease: lease({ streams: MAX_STREAMS + 1 }) }).problems[0]).toContain("lease.streams");
    expect(journalLoads({ op: "grant", lease: lease({ ttl_s: MAX_TTL_S + 1 }) }).problems[0]).toContain("lease.ttl_s");
  });

  test("--max-streams-per-gpu takes MAX_STREAMS and refuses one more", () => {
    const parsed = parseCommand(["serve", "--max-streams-per-gpu", String(MAX_STREAMS)], {});
    expect(parsed.kind === "serve" && parsed.options.maxStreamsPerGpu).toBe(MAX_STREAMS);
    expect(() => parseCommand(["serve", "--max-streams-per-gpu", String(MAX_STREAMS + 1)], {})).toThrow(UsageError);
  });
});
