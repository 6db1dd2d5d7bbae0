import { expect, test } from "bun:test";
import { cachedStats } from "../../src/inventory/stats-cache.ts";
import { mockStats } from "../../src/inventory/mock.ts";

test("cachedStats() polls once per window and shares the poll in flight", async () => {
  let polls = 0;
  let t = 0;
  const get = cachedStats(async () => (polls++, await Bun.sleep(5), mockStats()), 500, () => t);
  await Promise.all([get(), get(), get()]);
  expect(polls).toBe(1);
  t = 499;
  await get();
  expect(polls).toBe(1);
  t = 1000;
  await get();
  expect(polls).toBe(2);
});
