/** Telemetry from the spool to the mock Queen, through the publisher's connection. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { Publisher } from "../../src/console/publisher.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { TelemetryForwarder } from "../../src/telemetry/forward.ts";
import { envelopeRun } from "../../src/contract/queen.ts";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { ingest } from "../../src/telemetry/ingest.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { memoryLogger, REPO, tempDir, until } from "../helpers.ts";
import { record, tokenCounts } from "./helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let dir: { path: string; cleanup: () => void };
let publisher: Publisher | null = null;
let spool: Spool;

beforeEach(async () => {
  mock = await startMockConsole(runtime, { token: "t" });
  dir = tempDir("gbh-fwd-");
});
afterEach(async () => {
  await publisher?.stop();
  publisher = null;
  spool?.close();
  await mock.close();
  dir.cleanup();
});

function start(queenSegmentBytes = 64 * 1024) {
  const { log, lines } = memoryLogger();
  spool = Spool.open({ dir: dir.path, log });
  const forwarder = new TelemetryForwarder({ spool, deviceId: "edge-7", log, queenSegmentBytes });
  publisher = new Publisher({
    connect: runtime.connect,
    target: { host: "127.0.0.1", port: mock.port, token: "t", ticket: "" },
    snapshot: () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()))),
    log,
    intervalMs: 60_000,
    ackTimeoutMs: 1000,
    backoff: { baseMs: 10, capMs: 100 },
    sidecar: forwarder,
  });
  void publisher.start();
  const push = (from: number, n: number) => {
    ingest(Array.from({ length: n }, (_, i) => record(from + i)), builtinCatalog(), spool);
    publisher!.notifyWork();
  };
  return { forwarder, push, lines };
}

describe("forwarding", () => {
  test("delivers every record once, in order, filling model_id and lora_id from the active model", async () => {
    const { push, forwarder } = start();
    push(0, 30);
    await until(() => forwarder.forwarded === 30, 10_000, "30 records forwarded");
    const delivered = mock.state.queen.delivered("edge-7");
    expect(tokenCounts(delivered)).toEqual(Array.from({ length: 30 }, (_, i) => 100 + i));
    const first = JSON.parse(delivered.split("\n")[0]!);
    expect(first).toMatchObject({ model_id: "vision-base-v1", lora_id: "vision-lora-edge" });
    expect(delivered.split("\n")[0]).toContain('"confidence":0.500000');
    expect(spool.stats().records).toBe(0);
  });

  test("learns the segment from CAT latest when the Queen's ack does not name it", async () => {
    mock.state.queen.ackSegId = false;
    const { push, forwarder } = start();
    push(0, 5);
    await until(() => forwarder.forwarded === 5, 10_000, "5 records forwarded");
    expect(mock.state.linesReceived).toContain("CAT /queen/telemetry/edge-7/latest");
    expect(tokenCounts(mock.state.queen.delivered("edge-7"))).toEqual([100, 101, 102, 103, 104]);
  });

  test("a link killed mid-stream loses nothing and duplicates nothing", async () => {
    const { push, forwarder } = start();
    push(0, 40);
    mock.state.faults.closeAfterFrames = 57; // mid-record, a few records in
    await until(() => forwarder.forwarded === 40, 15_000, "40 records forwarded");
    expect(mock.state.connections).toBeGreaterThanOrEqual(2);
    expect(tokenCounts(mock.state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
  });

  test("after a reconnect, a segment that holds lines past the forwarder's run is left for a new one; nothing lost or repeated", async () => {
    const { push, forwarder, lines } = start();
    push(0, 5);
    await until(() => forwarder.forwarded === 5, 10_000, "5 records forwarded");
    // Someone else's line lands in the segment; then the link drops.
    const seg = spool.progress.queenSeg!;
    const other = new ConsoleConnection(mock.state);
    other.handle("AUTH t");
    other.handle("ATTACH queen ");
    expect(other.handle(`ECHO /queen/telemetry/edge-7/seg/${seg} not ours`).lines[0]).toMatch(/^OK ECHO/);
    mock.state.faults.closeAfterFrames = 1;
    push(5, 10);
    await until(() => forwarder.forwarded === 15, 10_000, "15 records forwarded");
    expect(spool.progress.queenSeg).not.toBe(seg);
    expect(tokenCounts(mock.state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 15 }, (_, i) => 100 + i));
    expect(lines.some((l) => l.includes("cannot read"))).toBe(false);
  });

  test("rolls to a new Queen segment at the configured size, never splitting a record", async () => {
    const { push, forwarder } = start(1000);
    push(0, 20);
    await until(() => forwarder.forwarded === 20, 10_000);
    const segments = mock.state.queen.devices.get("edge-7")!.segments;
    expect(segments.length).toBeGreaterThan(2);
    for (const s of segments) expect(envelopeRun(s.lines).payloads.join("").endsWith("\n")).toBe(true);
    expect(tokenCounts(mock.state.queen.delivered("edge-7")).length).toBe(20);
  });

  test("a quota refusal pauses forwarding, records keep spooling, and nothing is lost", async () => {
    mock.state.queen.quota = { maxSegments: 1, segmentBytes: 1 << 20, totalBytes: 600, policy: "refuse" };
    const { push, forwarder, lines } = start();
    push(0, 10);
    await until(() => lines.some((l) => l.includes("reason=quota") && l.includes("pausing forwarding")), 5000, "the quota refusal");
    push(10, 5);
    expect(spool.stats().records).toBeGreaterThan(5);
    mock.state.queen.quota = { maxSegments: 8, segmentBytes: 1 << 20, totalBytes: 1 << 20, policy: "refuse" };
    await until(() => forwarder.forwarded === 15, 10_000, "all 15 after the quota grew");
    expect(tokenCounts(mock.state.queen.delivered("edge-7"))).toEqual(Array.from({ length: 15 }, (_, i) => 100 + i));
  });
});

test("only src/util/cbor.ts imports cbor-x (its native extractor breaks under Bun)", () => {
  const offenders: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith(".ts") && /from "cbor-x/.test(readFileSync(p, "utf8")) && !p.endsWith(join("src", "util", "cbor.ts"))) {
        offenders.push(p);
      }
    }
  };
  for (const d of ["src", "mock", "ffi", "bench"]) walk(join(REPO, d));
  expect(offenders).toEqual([]);
});
