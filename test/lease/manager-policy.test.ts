/**
 * The operator's lease policy at the lease manager, the one place every grant passes: a term
 * over its maximum is refused naming the field, the value, the limit and the setting, at grant,
 * amendment and renewal; a journal's lease over a lowered maximum is kept as granted.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { LeaseManager } from "../../src/lease/manager.ts";
import { DEFAULT_LEASE_POLICY, type LeasePolicy, policyProblem, withDefaults } from "../../src/lease/policy.ts";
import type { Lease } from "../../src/lease/types.ts";
import { FakeClock } from "../helpers.ts";
import { refusal, requests } from "./helpers.ts";

const gpus = [{ id: "GPU-0", memory_mb: 24576 }];
const policy: LeasePolicy = { maxTtlS: 3600, maxMemMb: 8192, maxStreams: 4, memMb: 2048, streams: 2, ttlS: 300 };
const req = requests();
let clock: FakeClock;
let mgr: LeaseManager;

beforeEach(() => {
  clock = new FakeClock();
  mgr = new LeaseManager({ gpus: () => gpus, clock, policy });
});

const message = (field: string, value: number, max: number, key: string) =>
  `${field} ${value} is over ${key} ${max} (a serve flag and --config key)`;

describe("LeaseManager with a policy", () => {
  test("grants up to each maximum exactly and refuses one past it, naming the field, the value, the limit and the setting", () => {
    expect(mgr.grant(req({ mem_mb: 8192, streams: 4, ttl_s: 3600 })).state).toBe("ACTIVE");
    expect(refusal(() => mgr.grant(req({ mem_mb: 8193 })))).toEqual({
      code: "invalid",
      field: "mem_mb",
      message: message("mem_mb", 8193, 8192, "max-lease-mem-mb"),
    });
    expect(refusal(() => mgr.grant(req({ streams: 5 })))).toEqual({
      code: "invalid",
      field: "streams",
      message: message("streams", 5, 4, "max-lease-streams"),
    });
    expect(refusal(() => mgr.grant(req({ ttl_s: 3601 })))).toEqual({
      code: "invalid",
      field: "ttl_s",
      message: message("ttl_s", 3601, 3600, "max-ttl-s"),
    });
    expect(mgr.liveCount).toBe(1);
  });

  test("without a policy the host's own limits are all there is: a week, 1024 streams, the GPU's memory", () => {
    const open = new LeaseManager({ gpus: () => gpus, clock });
    expect(open.policy).toBe(DEFAULT_LEASE_POLICY);
    expect(open.grant(req({ mem_mb: 24576, streams: 16, ttl_s: 604800 })).state).toBe("ACTIVE");
  });

  test("an amendment is held to the maxima; nothing changes when it is refused", () => {
    const l = mgr.grant(req({ mem_mb: 1024, ttl_s: 60 }));
    const terms = { mem_mb: 1024, streams: 1, ttl_s: 60, priority: 5 };
    expect(refusal(() => mgr.amend(l.id, { ...terms, mem_mb: 9000 }))).toMatchObject({
      field: "mem_mb",
      message: message("mem_mb", 9000, 8192, "max-lease-mem-mb"),
    });
    expect(refusal(() => mgr.amend(l.id, { ...terms, ttl_s: 7200 })).field).toBe("ttl_s");
    expect(refusal(() => mgr.amend(l.id, { ...terms, streams: 8 })).field).toBe("streams");
    expect(mgr.get(l.id)).toMatchObject({ mem_mb: 1024, streams: 1, ttl_s: 60 });
    expect(mgr.amend(l.id, { ...terms, mem_mb: 8192, ttl_s: 3600 })).toMatchObject({ mem_mb: 8192, ttl_s: 3600 });
  });

  test("a renewal for a TTL over the maximum is refused and the deadline stays; one at the maximum is taken", () => {
    const l = mgr.grant(req({ ttl_s: 60 }));
    const before = l.expires_at;
    clock.advance(10_000);
    expect(refusal(() => mgr.renew(l.id, 3601))).toEqual({
      code: "invalid",
      field: "ttl_s",
      message: message("ttl_s", 3601, 3600, "max-ttl-s"),
    });
    expect(mgr.get(l.id)!.expires_at).toBe(before);
    expect(mgr.renew(l.id, 3600).expires_at).toBe(clock.now() + 3_600_000);
  });

  test("a journal's lease over a lowered maximum is kept with its terms, expires on time, and renews for its own TTL", () => {
    const journalled: Lease = {
      id: "lease-old",
      gpu_id: "GPU-0",
      worker_id: "old",
      mem_mb: 16384,
      streams: 8,
      ttl_s: 7200,
      priority: 1,
      state: "ACTIVE",
      granted_at: clock.now(),
      expires_at: clock.now() + 7_200_000,
    };
    const { restored, refused } = mgr.restore([journalled]);
    expect(refused).toEqual([]);
    expect(restored.map((l) => [l.id, l.mem_mb, l.streams, l.ttl_s])).toEqual([["lease-old", 16384, 8, 7200]]);
    expect(policyProblem(policy, restored[0]!)).toBe(message("mem_mb", 16384, 8192, "max-lease-mem-mb"));
    clock.advance(1000);
    expect(mgr.renew("lease-old").expires_at).toBe(clock.now() + 7_200_000);
    // New terms it asks for are held to today's maxima.
    expect(refusal(() => mgr.renew("lease-old", 7200)).field).toBe("ttl_s");
    clock.advance(7_200_000);
    expect(mgr.get("lease-old")!.state).toBe("RELEASED");
  });
});

describe("withDefaults()", () => {
  test("fills in each term left out from the policy, keeps those given", () => {
    expect(withDefaults(policy, { gpu_id: "GPU-0", mem_mb: undefined, streams: 3 }, (t) => `${t} is required`)).toEqual({
      gpu_id: "GPU-0",
      mem_mb: 2048,
      streams: 3,
      ttl_s: 300,
    });
  });

  test("a term left out with no default is refused naming the field and the setting that would give one", () => {
    expect(refusal(() => withDefaults(DEFAULT_LEASE_POLICY, { streams: 1 }, (t) => `${t} is required`))).toEqual({
      code: "invalid",
      field: "mem_mb",
      message: "mem_mb is required: this bridge sets no default lease-mem-mb (a serve flag and --config key)",
    });
    expect(refusal(() => withDefaults(DEFAULT_LEASE_POLICY, { mem_mb: 1 }, (t) => `${t} is required`)).field).toBe("streams");
    expect(withDefaults(DEFAULT_LEASE_POLICY, { mem_mb: 1, streams: 1 }, () => "")).toMatchObject({ ttl_s: 120 });
  });
});
