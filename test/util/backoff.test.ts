import { describe, expect, test } from "bun:test";
import { backoffDelay } from "../../src/util/backoff.ts";

describe("backoffDelay()", () => {
  const policy = { baseMs: 100, capMs: 30_000 };
  test("doubles per attempt between half and all of the exponential step", () => {
    expect(backoffDelay(0, policy, 0)).toBe(50);
    expect(backoffDelay(0, policy, 0.999999)).toBe(100);
    expect(backoffDelay(3, policy, 0)).toBe(400);
    expect(backoffDelay(3, policy, 0.5)).toBe(600);
  });
  test("never exceeds the 30 s cap, however many attempts", () => {
    for (const attempt of [8, 9, 20, 1000]) expect(backoffDelay(attempt, policy, 0.999999)).toBeLessThanOrEqual(30_000);
    expect(backoffDelay(1000, policy, 0)).toBe(15_000);
  });
});
