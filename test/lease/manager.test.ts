import { beforeEach, describe, expect, test } from "bun:test";
import { LeaseManager } from "../../src/lease/manager.ts";
import { LeaseError, type LeaseEvent, type LeaseRequest } from "../../src/lease/types.ts";
import { refusal, requests } from "./helpers.ts";
import { FakeClock } from "../helpers.ts";

const gpus = [{ id: "GPU-0", memory_mb: 24576 }, { id: "GPU-1", memory_mb: 8192 }];
let clock: FakeClock;
let mgr: LeaseManager;
let events: LeaseEvent[];
const req = requests();

beforeEach(() => {
  clock = new FakeClock();
  mgr = new LeaseManager({ gpus: () => gpus, clock, maxStreamsPerGpu: 8 });
  events = [];
  mgr.on((e) => events.push(e));
});

describe("LeaseManager.grant()", () => {
  test("grants up to exactly the GPU's memory and refuses one MiB more, with numbers", () => {
    mgr.grant(req({ mem_mb: 20480 }));
    expect(refusal(() => mgr.grant(req({ mem_mb: 4097 })))).toEqual({
      code: "insufficient",
      message: "insufficient memory on GPU-0: requested 4097 MiB, 4096 MiB unleased",
      field: "mem_mb",
    });
    expect(mgr.grant(req({ mem_mb: 4096 })).state).toBe("ACTIVE");
  });

  test("refuses past the memory total with the unleased amount", () => {
    mgr.grant(req({ mem_mb: 6144, gpu_id: "GPU-1" }));
    expect(refusal(() => mgr.grant(req({ mem_mb: 4096, gpu_id: "GPU-1" }))).message).toBe(
      "insufficient memory on GPU-1: requested 4096 MiB, 2048 MiB unleased",
    );
  });

  test("caps streams per GPU", () => {
    mgr.grant(req({ streams: 6 }));
    expect(refusal(() => mgr.grant(req({ streams: 3 })))).toMatchObject({
      code: "insufficient",
      message: "insufficient streams on GPU-0: requested 3, 2 of 8 unleased",
      field: "streams",
    });
    expect(mgr.grant(req({ streams: 2 })).streams).toBe(2);
  });

  test.each(
    [
      [{ gpu_id: "GPU-9" }, "not_found", "gpu_id", 'Unknown GPU "GPU-9"'],
      [{ worker_id: "bad worker" }, "invalid", "worker_id", 'worker_id must be 1-64 characters of A-Z a-z 0-9 . _ -, got "bad worker"'],
      [{ mem_mb: 0 }, "invalid", "mem_mb", "mem_mb must be an integer from 1 to"],
      [{ streams: 1.5 }, "invalid", "streams", "streams must be an integer from 1 to 1024, got 1.5"],
      [{ ttl_s: 0 }, "invalid", "ttl_s", "ttl_s must be an integer from 1 to 604800, got 0"],
      [{ priority: 256 }, "invalid", "priority", "priority must be an integer from 0 to 255, got 256"],
    ] as const,
  )("refuses %j", (o, code, field, message) => {
    const r = refusal(() => mgr.grant(req(o as Partial<LeaseRequest>)));
    expect(r.code).toBe(code);
    expect(r.field).toBe(field);
    expect(r.message).toStartWith(message);
  });

  test("refuses a second lease for the same worker on the same GPU", () => {
    const l = mgr.grant(req({ worker_id: "dup" }));
    expect(refusal(() => mgr.grant(req({ worker_id: "dup" })))).toMatchObject({ code: "conflict" });
    expect(mgr.grant(req({ worker_id: "dup", gpu_id: "GPU-1" })).id).not.toBe(l.id);
  });

  test("applies the admission policy", () => {
    const m = new LeaseManager({ gpus: () => gpus, clock, admit: (_g, live) => (live.length >= 1 ? "lease log full" : null) });
    m.grant(req());
    expect(refusal(() => m.grant(req()))).toMatchObject({ code: "insufficient", message: "lease log full" });
  });
});

describe("expiry", () => {
  test("expires at the deadline, not before, with one timer for many leases", () => {
    const a = mgr.grant(req({ ttl_s: 10 }));
    const b = mgr.grant(req({ ttl_s: 5 }));
    const c = mgr.grant(req({ ttl_s: 20 }));
    expect(clock.pending).toBe(1);
    clock.advance(4999);
    expect(b.state).toBe("ACTIVE");
    clock.advance(1);
    expect(b.state).toBe("RELEASED");
    expect(b.released_reason).toBe("expired");
    clock.advance(5000);
    expect(a.state).toBe("RELEASED");
    expect(c.state).toBe("ACTIVE");
    expect(clock.pending).toBe(1);
    clock.advance(10_000);
    expect(mgr.live()).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  test("renew extends from now and the stale deadline is skipped", () => {
    const a = mgr.grant(req({ ttl_s: 10 }));
    clock.advance(8000);
    mgr.renew(a.id);
    clock.advance(5000);
    expect(a.state).toBe("ACTIVE");
    clock.advance(5000);
    expect(a.state).toBe("RELEASED");
    expect(events.map((e) => e.type)).toEqual(["granted", "renewed", "released"]);
  });

  test("released memory can be leased again", () => {
    const big = mgr.grant(req({ mem_mb: 24576 }));
    expect(() => mgr.grant(req())).toThrow(LeaseError);
    mgr.release(big.id, "done");
    expect(mgr.grant(req()).state).toBe("ACTIVE");
  });

  test("operations on an ended lease are refused with a permission error", () => {
    const a = mgr.grant(req());
    mgr.release(a.id);
    expect(refusal(() => mgr.renew(a.id))).toMatchObject({ code: "permission" });
    expect(refusal(() => mgr.release("nope"))).toMatchObject({ code: "not_found" });
  });

  test("restore() adopts live leases and releases those whose TTL passed while down", () => {
    const a = mgr.grant(req({ ttl_s: 10 }));
    const b = mgr.grant(req({ ttl_s: 100 }));
    const later = new FakeClock(clock.now() + 50_000);
    const m2 = new LeaseManager({ gpus: () => gpus, clock: later });
    const { restored, expired } = m2.restore([{ ...a }, { ...b }]);
    expect(expired.map((l) => l.id)).toEqual([a.id]);
    expect(restored.map((l) => l.id)).toEqual([b.id]);
    later.advance(50_000);
    expect(m2.get(b.id)!.state).toBe("RELEASED");
  });

  test("releaseGpu() ends every live lease of one GPU", () => {
    mgr.grant(req());
    mgr.grant(req());
    const other = mgr.grant(req({ gpu_id: "GPU-1" }));
    expect(mgr.releaseGpu("GPU-0", "reset").length).toBe(2);
    expect(mgr.live().map((l) => l.id)).toEqual([other.id]);
  });
});
