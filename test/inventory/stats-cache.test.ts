import { expect, test } from "bun:test";
import { StatsSampler } from "../../src/inventory/stats-cache.ts";
import { mockStats } from "../../src/inventory/mock.ts";
import type { GpuStats } from "../../src/inventory/stats.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

test("StatsSampler polls once per period of its clock, shares a poll in flight, and reads never poll", async () => {
  const clock = new FakeClock(0);
  let release!: () => void;
  let value = 1;
  const poll = async (): Promise<GpuStats[]> => {
    await new Promise<void>((r) => (release = r));
    return mockStats().map((s) => ({ ...s, power_w: value }));
  };
  const s = new StatsSampler({ poll, clock, periodMs: 1000 });
  expect(s.latest()).toEqual([]);
  const started = s.start();
  const shared = s.sample(); // joins the poll in flight
  release();
  await Promise.all([started, shared]);
  expect(s.polls).toBe(1);
  expect(s.latest()[0]!.power_w).toBe(1);
  for (let i = 0; i < 100; i++) s.latest();
  expect(s.polls).toBe(1);
  value = 2;
  clock.advance(999);
  expect(s.polls).toBe(1);
  clock.advance(1);
  expect(s.polls).toBe(2);
  release();
  await s.sample();
  expect(s.latest()[0]!.power_w).toBe(2);
  expect(s.sampledAt).toBe(1000);
  s.stop();
  expect(clock.pending).toBe(0);
});

test("a failing poll keeps the last sample and is told once", async () => {
  const clock = new FakeClock(0);
  const { log, lines } = memoryLogger();
  let fail = false;
  const s = new StatsSampler({
    poll: () => (fail ? Promise.reject(new Error("NVML_ERROR_GPU_IS_LOST")) : Promise.resolve(mockStats())),
    clock,
    periodMs: 1000,
    log,
  });
  await s.start();
  fail = true;
  await s.sample();
  await s.sample();
  expect(s.latest()).toEqual(mockStats());
  expect(lines.filter((l) => l.includes("Cannot read GPU stats")).length).toBe(1);
  expect(lines.join("")).toContain("NVML_ERROR_GPU_IS_LOST");
  s.stop();
});
