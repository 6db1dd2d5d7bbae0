import { expect, test } from "bun:test";
import { cachedStats } from "../../src/inventory/stats-cache.ts";
import { mockStats } from "../../src/inventory/mock.ts";
import { FakeClock } from "../helpers.ts";

test("cachedStats() polls once per window and shares the poll in flight", async () => {
  let polls = 0;
  const clock = new FakeClock(0);
  let release!: () => void;
  const get = cachedStats(async () => (polls++, await new Promise<void>((r) => (release = r)), mockStats()), 500, clock);
  const three = Promise.all([get(), get(), get()]);
  release();
  await three;
  expect(polls).toBe(1);
  clock.advance(499);
  await get();
  expect(polls).toBe(1);
  clock.advance(501);
  const next = get();
  release();
  await next;
  expect(polls).toBe(2);
});
