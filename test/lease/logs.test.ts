import { describe, expect, test } from "bun:test";
import { parseControl } from "../../src/lease/control.ts";
import { BoundedLines, GpuLogs } from "../../src/lease/logs.ts";
import { ctlLeaseLine, leaseRecord, statusLine } from "../../src/lease/records.ts";
import type { Lease } from "../../src/lease/types.ts";

const lease = (id: string, worker = "worker-1"): Lease => ({
  id,
  gpu_id: "GPU-0",
  worker_id: worker,
  mem_mb: 4096,
  streams: 2,
  ttl_s: 120,
  priority: 5,
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 0,
});

describe("records", () => {
  test("lease records match the contract's key order byte for byte", () => {
    expect(leaseRecord(lease("a"), "ACTIVE")).toBe(
      '{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":"worker-1","mem_mb":4096,"streams":2,"ttl_s":120,"priority":5}',
    );
    expect(ctlLeaseLine(lease("a"))).toBe("LEASE worker-1 mem=4096 streams=2 priority=5");
    expect(statusLine('j"1', "ERR", "TIMEOUT\n")).toBe('{"job":"j\\"1","state":"ERR","detail":"TIMEOUT\\n"}');
  });
});

describe("BoundedLines", () => {
  test("drops the oldest lines first to stay within its budget", () => {
    const b = new BoundedLines(12);
    for (const l of ["aaa", "bbb", "ccc", "ddd"]) b.append(l);
    expect(b.text()).toBe("bbb\nccc\nddd\n");
    expect(b.bytes).toBe(12);
  });
});

describe("GpuLogs", () => {
  test("keeps each live lease's current ACTIVE line however much else is logged", () => {
    const logs = new GpuLogs("GPU-0");
    logs.appendActive("keep", leaseRecord(lease("keep", "keeper"), "ACTIVE"));
    for (let i = 0; i < 30; i++) {
      const l = lease(`t${i}`, `tmp-${i}`);
      logs.appendActive(l.id, leaseRecord(l, "ACTIVE"));
      logs.appendReleased(l.id, leaseRecord(l, "RELEASED"));
    }
    const text = logs.payloads()!.lease!;
    expect(new TextEncoder().encode(text).length).toBeLessThanOrEqual(1024);
    expect(text.split("\n")[0]).toContain('"worker_id":"keeper"');
    expect(text).toContain('"worker_id":"tmp-29"');
    expect(text).not.toContain('"worker_id":"tmp-0"');
  });

  test("the same ACTIVE line written again is kept once, so the log still trims", () => {
    const logs = new GpuLogs("GPU-0");
    const line = leaseRecord(lease("x"), "ACTIVE");
    for (let i = 0; i < 20; i++) logs.appendActive("x", line);
    expect(logs.payloads()!.lease).toBe(`${line}\n`.repeat(5));
    expect(logs.pinnedBytes()).toBe(new TextEncoder().encode(line).length + 1);
    for (let i = 0; i < 20; i++) logs.appendStatus("{}");
    expect(logs.payloads()!.lease!.split(line).length - 1).toBeLessThanOrEqual(5);
  });

  test("an old ACTIVE line is no longer pinned once a newer one replaces it", () => {
    const logs = new GpuLogs("GPU-0");
    const l = lease("x");
    logs.appendActive("x", leaseRecord(l, "ACTIVE"));
    logs.appendActive("x", leaseRecord({ ...l, priority: 9 }, "ACTIVE"));
    expect(logs.pinnedBytes()).toBe(new TextEncoder().encode(leaseRecord({ ...l, priority: 9 }, "ACTIVE")).length + 1);
  });

  test("keeps the ctl seed line and bounds status and ctl to the VM's limits", () => {
    const logs = new GpuLogs("GPU-0");
    expect(logs.payloads()).toBeUndefined();
    for (let i = 0; i < 2000; i++) logs.appendStatus(statusLine(`job-${i}`, "OK", "x".repeat(20)));
    for (let i = 0; i < 4000; i++) logs.appendCtl(`LEASE w${i} mem=1 streams=1 priority=${i % 256}`);
    const p = logs.payloads()!;
    expect(new TextEncoder().encode(p.status).length).toBeLessThanOrEqual(32 * 1024);
    expect(p.status).toContain('"job":"job-1999"');
    expect(p.ctl!.startsWith("LEASE GPU-0\n")).toBe(true);
    expect(new TextEncoder().encode(p.ctl!).length).toBeLessThanOrEqual(128 * 1024);
    expect(p.ctl!.endsWith("priority=159\n")).toBe(true);
  });
});

describe("parseControl()", () => {
  test("reads the four verbs", () => {
    expect(parseControl("LEASE worker-1 mem=4096 streams=2 priority=5\n")).toEqual({
      verb: "LEASE",
      worker: "worker-1",
      mem: 4096,
      streams: 2,
      priority: 5,
    });
    expect(parseControl("LEASE w mem=1 streams=1 priority=0 ttl=30")).toMatchObject({ ttl: 30 });
    expect(parseControl("RELEASE worker-1 job done")).toEqual({ verb: "RELEASE", worker: "worker-1", reason: "job done" });
    expect(parseControl("RELEASE worker-1")).toEqual({ verb: "RELEASE", worker: "worker-1", reason: "released" });
    expect(parseControl("PRIORITY 7")).toEqual({ verb: "PRIORITY", priority: 7 });
    expect(parseControl("PRIORITY 7 worker=w2")).toEqual({ verb: "PRIORITY", priority: 7, worker: "w2" });
    expect(parseControl("RESET")).toEqual({ verb: "RESET" });
  });

  test.each([
    ["LEASE mem=1 streams=1 priority=1", "LEASE needs a worker id"],
    ["LEASE w mem=1 streams=1", "LEASE needs priority=<n>"],
    ["LEASE w mem=1 streams=1 ttl=5", "LEASE needs priority=<n>"],
    ["LEASE w mem=1 streams=1 priority=1 memory=2", 'LEASE does not take "memory=2"'],
    ["LEASE w mem=-1 streams=1 priority=1", 'LEASE mem must be a non-negative integer, got "-1"'],
    ["LEASE w mem=1 mem=2 streams=1 priority=1", "LEASE names mem twice"],
    ["PRIORITY high", 'priority must be an integer from 0 to 255, got "high"'],
    ["PRIORITY 300", "priority must be an integer from 0 to 255, got 300"],
    ["RESET now", 'RESET takes no arguments, got "now"'],
    ["lease w mem=1", 'Unknown control verb "lease"'],
    ["LEASE w\nRESET", "a control line must be a single line"],
  ])("refuses %j", (line, message) => {
    expect(() => parseControl(line)).toThrow(message);
  });
});
