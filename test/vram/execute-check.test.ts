/**
 * "May I execute now?" on a fake clock (src/vram/execute-check.ts): under the full gate a
 * verification older than the limit is run at the check; under the sampled gate the sampled
 * leaves are rehashed at once and a stale full verification is refused as retryable; a one-byte
 * change is refused either way, for good.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { executeCheck } from "../../src/vram/execute-check.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, FakeClock } from "../helpers.ts";
import { pattern, source } from "./vectors.ts";
import { hostStore } from "./host-store.ts";

const pool = TreePool.create(0);
afterAll(() => pool.close());

async function setup() {
  const clock = new FakeClock();
  const lease = activeLease({ id: "L" });
  const store = hostStore(pool, lease, { clock });
  await store.seal("L", source(pattern(4 * LEAF_BYTES)), { shard_id: "s" });
  const check = (mode: "full" | "sampled", maxAgeMs = 1000) => executeCheck(store, "s", { maxAgeMs, mode, now: clock.now });
  return { clock, store, check };
}

describe("executeCheck()", () => {
  test("full gate: a fresh verification answers at once; a stale one is redone at the check, and the answer says when", async () => {
    const { clock, store, check } = await setup();
    const sealedAt = clock.now();
    expect(await check("full")).toMatchObject({ ok: true, may_execute: true, verified_now: false, age_ms: 0, max_age_ms: 1000 });
    expect(store.get("s")!.verifications).toBe(0);
    clock.advance(1001);
    const r = await check("full");
    expect(r).toMatchObject({ ok: true, may_execute: true, mode: "full", verified_now: true, leaves_checked: 4, age_ms: 0 });
    expect(r.ok && Date.parse(r.full_verified_at)).toBe(sealedAt + 1001);
    expect(store.get("s")!.verifications).toBe(1);
  });

  test("full gate with max age 0: every check verifies, so a one-byte change is refused and stays refused", async () => {
    const { store, check } = await setup();
    expect((await check("full", 0)).ok).toBe(true);
    store.corrupt("s", 2 * LEAF_BYTES + 9, 0x00);
    const r = await check("full", 0);
    expect(r).toMatchObject({ ok: false, may_execute: false, code: "seal_verification_failed", retryable: false });
    expect(store.get("s")!.state).toBe("FAILED");
    expect(await check("full", 1_000_000)).toMatchObject({ ok: false, code: "seal_verification_failed" });
  });

  test("sampled gate: leaves are rehashed at every check; a stale full verification is a retryable no until one runs", async () => {
    const { clock, store, check } = await setup();
    const ok = await check("sampled");
    expect(ok).toMatchObject({ ok: true, mode: "sampled", verified_now: true, leaves_checked: 4 });
    clock.advance(1001);
    const stale = await check("sampled");
    expect(stale).toMatchObject({ ok: false, may_execute: false, code: "stale_verification", retryable: true });
    expect(stale.ok === false && stale.message).toContain("1001 ms old, not under 1000 ms");
    expect((await store.verify("s", "full")).ok).toBe(true); // the sweep's (or an operator's) full verification
    expect(await check("sampled")).toMatchObject({ ok: true, may_execute: true, age_ms: 0 });
    store.corrupt("s", 10, 0xee);
    expect(await check("sampled")).toMatchObject({ ok: false, code: "seal_verification_failed" }); // k=8 covers all 4 leaves
  });

  test("an unknown shard is not_sealed", async () => {
    const { store } = await setup();
    expect(await executeCheck(store, "nope", { maxAgeMs: 0, mode: "full", now: () => 0 })).toMatchObject({
      ok: false,
      code: "not_sealed",
      retryable: false,
    });
  });
});
