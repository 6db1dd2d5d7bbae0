/**
 * The daemon's INFO log under load: per-publish, per-compaction and per-lease lines are DEBUG,
 * and one summary line a minute (on the Clock) counts them.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Activity, ActivitySummary } from "../../src/app/activity.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { publishingServe } from "../vm/helpers.ts";
import { FakeClock, memoryLogger, until } from "../helpers.ts";

const zero: Activity = { publishes: 0, publishedBytes: 0, appends: 0, readbacks: 0, compactions: 0, vmLines: 0, leasesEnded: 0 };

describe("ActivitySummary", () => {
  test("logs once a period what grew in it, nothing for an idle period, nothing after stop", async () => {
    const clock = new FakeClock();
    const { log, lines } = memoryLogger("info");
    let now: Activity = { ...zero, publishes: 5, publishedBytes: 500 }; // before start: not counted
    const summary = new ActivitySummary({ clock, log, periodMs: 60_000, read: () => now });
    now = { publishes: 845, publishedBytes: 50_500, appends: 1, readbacks: 30, compactions: 12, vmLines: 2, leasesEnded: 600 };
    await clock.run(59_999);
    expect(lines).toEqual([]);
    await clock.run(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEndWith(
      "INFO  bridge: last 60 s: 840 publishes (50000 bytes), 1 append, 30 read-backs, 12 compactions, 2 VM lines read, 600 leases ended\n",
    );
    await clock.run(60_000); // nothing happened
    expect(lines).toHaveLength(1);
    now = { ...now, publishes: 846, publishedBytes: 50_600 };
    await clock.run(60_000);
    expect(lines[1]).toContain("last 60 s: 1 publish (100 bytes), 0 appends, 0 read-backs");
    summary.stop();
    now = { ...now, publishes: 900 };
    await clock.run(600_000);
    expect(lines).toHaveLength(2);
    expect(clock.pending).toBe(0);
  });
});

describe("the daemon's log at INFO under lease churn", () => {
  const runtime = bunRuntime();
  let mock: MockConsole;
  let daemon: Bridge | null = null;
  afterEach(async () => {
    await daemon?.stop();
    await mock.close();
  });

  test("has no line per publish, compaction or lease end; the minute's summary counts them", async () => {
    mock = await startMockConsole(runtime, { token: "tok" });
    const clock = new FakeClock();
    const { log, lines } = memoryLogger("info");
    const options = publishingServe(mock.port, "--readback-ms", "0", "--ack-timeout-ms", "600000");
    daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { noJournal: true, clock });
    await until(() => mock.state.publishes === 1, 5000, "the first publish");
    for (let i = 0; i < 20; i++) {
      const lease = daemon.leases.grant({
        gpu_id: "GPU-0",
        worker_id: `worker-long-name-${i}`,
        mem_mb: 64,
        streams: 1,
        ttl_s: 600,
        priority: 1,
      });
      const before = mock.state.publishes;
      for (let t = 0; mock.state.publishes === before && t < 500; t++) {
        await clock.run(10);
        await Bun.sleep(1);
      }
      daemon.leases.release(lease.id, "done");
    }
    const published = daemon.publisher!.stats.publishes;
    expect(published).toBeGreaterThan(10);
    const perEvent = lines.filter((l) => / published .*\(changed\)|full snapshot due|compacted |lease lease-.* ended/.test(l));
    expect(perEvent).toEqual([]);
    await clock.run(60_000);
    const summary = lines.filter((l) => l.includes("INFO  activity: last 60 s: "));
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatch(/last 60 s: [0-9]+ publishes \([0-9]+ bytes\), .* 20 leases ended/);
  });
});
