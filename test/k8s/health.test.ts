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

test("a GPU never reported on is Healthy; one with only an event recovers on time, saying why", () => {
  const clock = new FakeClock();
  const h = new HealthBook(clock, 500);
  expect(h.healthy("GPU-7")).toBe(true);
  h.critical("GPU-7", "double-bit ECC error");
  expect(h.evaluate()).toEqual([{ gpuId: "GPU-7", healthy: false, reason: "double-bit ECC error" }]);
  clock.advance(500);
  expect(h.evaluate()).toEqual([{
    gpuId: "GPU-7",
    healthy: true,
    reason: "answers again and no critical event for 500 ms since double-bit ECC error",
  }]);
  h.answered(["GPU-7"], new Set());
  h.evaluate();
  h.answered(["GPU-7"], new Set(["GPU-7"]));
  expect(h.evaluate()[0]!.reason).toBe("answers again and no critical event for 500 ms since double-bit ECC error");
  const fresh = new HealthBook(clock, 500);
  fresh.answered(["GPU-0"], new Set());
  fresh.evaluate();
  fresh.answered(["GPU-0"], new Set(["GPU-0"]));
  expect(fresh.evaluate()).toEqual([{ gpuId: "GPU-0", healthy: true, reason: "answers again" }]);
});
