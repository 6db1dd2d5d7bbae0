import { afterEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../mock/inventory.ts";
import { HostState } from "../../src/host/state.ts";
import type { Runner } from "../../src/job/runner.ts";
import { leaseRecord } from "../../src/lease/records.ts";
import { LIMITS } from "../../src/namespace/limits.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const utf8 = (s: string) => new TextEncoder().encode(s).length;
const idle: Runner = { run: () => new Promise(() => {}) };
let host: HostState | undefined;
afterEach(() => host?.close());
const make = (o: Partial<ConstructorParameters<typeof HostState>[0]> = {}) =>
  (host = new HostState({ gpus: () => MOCK_GPUS, runner: idle, runnerKind: "cpu", log: memoryLogger().log, onChange: () => {}, clock: new FakeClock(), ...o }));

describe("F5: PRIORITY cannot grow a full lease log past the VM's cap", () => {
  test("a full lease log, then PRIORITY 255: the lease log stays within 1 KiB", () => {
    const h = make();
    h.control("GPU-0", "LEASE w0 mem=1 streams=1 priority=1");
    const base = utf8(leaseRecord({ ...h.leases.live("GPU-0")[0]!, worker_id: "" }, "ACTIVE")) + 1;
    const room = () => LIMITS.leaseLogBytes - utf8(h.nodeLogs("GPU-0")!.lease!) - base;
    for (let i = 1; room() > 64; i++) h.control("GPU-0", `LEASE w${i} mem=1 streams=1 priority=1`);
    // One more lease whose worker id fills the log to the last byte, as admission counted it.
    const fill = room();
    expect(fill).toBeGreaterThan(0);
    expect(fill).toBeLessThanOrEqual(64);
    try {
      h.control("GPU-0", `LEASE ${"x".repeat(fill)} mem=1 streams=1 priority=1`);
    } catch { /* refused: it could not survive a PRIORITY 255 */ }
    h.control("GPU-0", "PRIORITY 255");
    expect(utf8(h.nodeLogs("GPU-0")!.lease!)).toBeLessThanOrEqual(LIMITS.leaseLogBytes);
  });
});
