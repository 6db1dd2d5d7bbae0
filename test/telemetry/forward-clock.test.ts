/**
 * The forwarder on a fake clock, through the publisher's in-memory connection to the mock
 * Queen: quota pauses are timed by the injected clock, not by wall time.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { memoryMockConsole } from "../../mock/console/server.ts";
import type { Connect } from "../../src/runtime/transport.ts";
import { Publisher } from "../../src/console/publisher.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { TelemetryForwarder } from "../../src/telemetry/forward.ts";
import { ingest } from "../../src/telemetry/ingest.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";
import { record, tokenCounts } from "./helpers.ts";

let dir: { path: string; cleanup: () => void };
let publisher: Publisher | null = null;
let spool: Spool | null = null;

beforeEach(() => (dir = tempDir("gbh-fwdc-")));
afterEach(async () => {
  await publisher?.stop();
  publisher = null;
  spool?.close();
  dir.cleanup();
});

function start(clock: FakeClock, connect: Connect, segmentBytes?: number) {
  const { log, lines } = memoryLogger();
  const s = (spool = Spool.open({ dir: dir.path, log, clock, ...(segmentBytes !== undefined && { segmentBytes }) }));
  const forwarder = new TelemetryForwarder({ spool: s, deviceId: "edge-7", log, clock });
  publisher = new Publisher({
    connect,
    target: { host: "127.0.0.1", port: 1, token: "t", ticket: "" },
    snapshot: () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()))),
    log,
    intervalMs: 60_000,
    sidecar: forwarder,
    clock,
  });
  void publisher.start();
  const push = (from: number, n: number) => {
    ingest(Array.from({ length: n }, (_, i) => record(from + i)), builtinCatalog(), s);
    publisher!.notifyWork();
  };
  return { forwarder, push, lines };
}

test("a quota refusal pauses forwarding for exactly the pause the forwarder chose, then resumes on its own", async () => {
  const clock = new FakeClock();
  const { state, connect } = memoryMockConsole({ token: "t" }, clock);
  state.queen.quota = { maxSegments: 1, segmentBytes: 1 << 20, totalBytes: 600, policy: "refuse" };
  const { push, forwarder, lines } = start(clock, connect);
  push(0, 10);
  await clock.run(0);
  expect(lines.some((l) => l.includes("reason=quota") && l.includes("pausing forwarding"))).toBe(true);
  const sent = forwarder.forwarded;
  const pause = forwarder.pausedFor();
  expect(pause).toBeGreaterThan(0);
  expect(forwarder.hasWork()).toBe(false);
  state.queen.quota = { maxSegments: 8, segmentBytes: 1 << 20, totalBytes: 1 << 20, policy: "refuse" };
  push(10, 5); // records keep spooling while paused
  await clock.run(pause - 1);
  expect(forwarder.forwarded).toBe(sent); // still paused, though the quota grew
  await clock.run(1);
  expect(forwarder.forwarded).toBe(15);
  expect(tokenCounts(state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 15 }, (_, i) => 100 + i));
});

test("a throttled refusal's delay_ms is the pause, to the millisecond", async () => {
  const clock = new FakeClock();
  const { state, connect } = memoryMockConsole({ token: "t" }, clock);
  const { push, forwarder } = start(clock, connect);
  await clock.run(0); // connected and published: the snapshot's 20 echoes
  state.faults.errOnEcho = { n: state.echoes + 2, detail: "reason=quota detail=throttled delay_ms=750" };
  push(0, 3);
  await clock.run(0);
  expect(forwarder.pausedFor()).toBe(750);
  const sent = forwarder.forwarded;
  await clock.run(749);
  expect(forwarder.forwarded).toBe(sent);
  await clock.run(1);
  expect(forwarder.forwarded).toBe(3);
});

test("forwarding that has caught up follows every new spool segment: records sent one by one all arrive", async () => {
  const clock = new FakeClock();
  const { state, connect } = memoryMockConsole({ token: "t" }, clock);
  const { push, forwarder } = start(clock, connect, 1); // every record fills its segment
  await clock.run(0);
  for (let i = 0; i < 8; i++) {
    push(i, 1);
    await clock.run(0);
    expect(forwarder.forwarded).toBe(i + 1); // caught up at a segment's end, then the next segment
    expect(spool!.oldestWaitingMs()).toBeNull();
  }
  expect(tokenCounts(state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 8 }, (_, i) => 100 + i));
});
