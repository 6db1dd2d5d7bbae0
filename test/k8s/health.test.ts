/** Health that recovers, on a fake clock. */
import { expect, test } from "bun:test";
import { HealthBook } from "../../src/k8s/health.ts";
import { FakeClock } from "../helpers.ts";

test("a critical event makes a GPU Unhealthy until recoverMs pass without another", () => {
  const clock = new FakeClock();
  const h = new HealthBook(clock, 30_000);
  h.answered(["GPU-0", "GPU-1"], new Set(["GPU-0", "GPU-1"]));
  expect(h.evaluate()).toEqual([]);
  h.critical("GPU-1", "XID 79");
  expect(h.evaluate()).toEqual([{ gpuId: "GPU-1", healthy: false, reason: "XID 79" }]);
  clock.advance(20_000);
  h.critical("GPU-1", "XID 48");
  clock.advance(29_999);
  expect(h.evaluate()).toEqual([]);
  expect(h.healthy("GPU-1")).toBe(false);
  clock.advance(1);
  const [back] = h.evaluate();
  expect(back).toMatchObject({ gpuId: "GPU-1", healthy: true });
  expect(back!.reason).toContain("XID 48");
  expect(h.healthy("GPU-0")).toBe(true);
});

test("a GPU that does not answer is Unhealthy, and Healthy once it answers", () => {
  const clock = new FakeClock();
  const h = new HealthBook(clock, 30_000);
  h.answered(["GPU-0"], new Set());
  expect(h.evaluate()).toEqual([{ gpuId: "GPU-0", healthy: false, reason: "does not answer" }]);
  h.answered(["GPU-0"], new Set(["GPU-0"]));
  expect(h.evaluate()).toMatchObject([{ gpuId: "GPU-0", healthy: true }]);
});
