/**
 * The daemon's console traffic with the window on, over a link with real latency: a
 * refusal inside a window restarts the snapshot from `begin`, telemetry resumes at its first
 * unacknowledged chunk with nothing lost or duplicated, also when the link dies mid-window, and
 * the console's 8-line queue never overflows.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { MAX_WINDOW } from "../../src/contract/window.ts";
import { Publisher, type PublisherOptions } from "../../src/console/publisher.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { TelemetryForwarder } from "../../src/telemetry/forward.ts";
import { ingest } from "../../src/telemetry/ingest.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { record, tokenCounts } from "../telemetry/helpers.ts";

const runtime = bunRuntime();
const ns = buildNamespace(MOCK_GPUS, builtinCatalog());
let mock: MockConsole;
let publisher: Publisher | null = null;
let spool: Spool | null = null;
let dir: { path: string; cleanup: () => void };
let dropped = 0;

/** A seeded generator, so a lossy link fails at the same chunks every run. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

beforeEach(async () => {
  mock = await startMockConsole(runtime, { token: "w", random: seeded(7) });
  mock.state.on((e) => void (e.type === "dropped" && dropped++));
  mock.state.faults.latencyMs = 10; // a 20 ms round trip, frames side by side
  dropped = 0;
  dir = tempDir("gbh-window-");
});
afterEach(async () => {
  await publisher?.stop();
  publisher = null;
  spool?.close();
  spool = null;
  await mock.close();
  dir.cleanup();
});

function start(overrides: Partial<PublisherOptions> = {}, telemetry = false) {
  const { log, lines } = memoryLogger();
  spool = telemetry ? Spool.open({ dir: dir.path, log }) : null;
  const forwarder = spool === null ? undefined : new TelemetryForwarder({ spool, deviceId: "edge-w", log });
  publisher = new Publisher({
    connect: runtime.connect,
    target: { host: "127.0.0.1", port: mock.port, token: "w", ticket: "" },
    snapshot: () => Promise.resolve(makeSnapshot(ns)),
    log,
    intervalMs: 60_000,
    ackTimeoutMs: 2000,
    backoff: { baseMs: 10, capMs: 50 },
    ...(forwarder === undefined ? {} : { sidecar: forwarder }),
    ...overrides,
  });
  void publisher.start();
  const push = (from: number, n: number) => {
    ingest(Array.from({ length: n }, (_, i) => record(from + i, { device_id: "edge-w" })), builtinCatalog(), spool!);
    publisher!.notifyWork();
  };
  return { lines, forwarder, push };
}

describe("the publisher with a window", () => {
  test("a refusal mid-window restarts the snapshot from begin, and it lands whole", async () => {
    mock.state.faults.errOnEcho = { n: 6, detail: "reason=busy" };
    const { lines } = start({ window: MAX_WINDOW });
    await until(() => mock.state.publishes === 1, 5000, "the snapshot to land");
    expect(mock.state.tree).toEqual(ns);
    const begins = mock.state.linesReceived.filter((l) => l.startsWith("ECHO /gpu/bridge/ctl begin "));
    expect(begins).toHaveLength(2);
    expect(lines.some((l) => l.includes("Console refused ECHO: reason=busy; retrying the publish"))).toBe(true);
    expect(mock.state.connections).toBe(1);
    expect(dropped).toBe(0);
  });
});

describe("telemetry with a window", () => {
  test("delivers every record once, in order, with the window full", async () => {
    const { push, forwarder } = start({ window: MAX_WINDOW }, true);
    push(0, 30);
    await until(() => forwarder!.forwarded === 30, 15_000, "30 records forwarded");
    expect(tokenCounts(mock.state.queen.delivered("edge-w"))).toEqual(Array.from({ length: 30 }, (_, i) => 100 + i));
    expect(spool!.stats().records).toBe(0);
    expect(dropped).toBe(0);
  });

  test("a chunk refused mid-window: the chunks behind it are resent, nothing lost or doubled", async () => {
    const { push, forwarder, lines } = start({ window: 4 }, true);
    push(0, 12);
    // Past the snapshot and the segment request, inside the second record.
    mock.state.faults.errOnEcho = { n: 18 + 1 + 14, detail: "reason=busy" };
    await until(() => forwarder!.forwarded === 12, 15_000, "12 records forwarded");
    expect(lines.some((l) => l.includes("telemetry: Console refused ECHO: reason=busy"))).toBe(true);
    // The chunks on the wire behind the refusal reached the Queen out of order and were refused.
    expect(mock.state.queen.delivered("edge-w").length).toBeGreaterThan(0);
    expect(tokenCounts(mock.state.queen.delivered("edge-w"))).toEqual(Array.from({ length: 12 }, (_, i) => 100 + i));
  });

  test("a link that dies mid-window, again and again, loses nothing and doubles nothing", async () => {
    const { push, forwarder } = start({ window: 4 }, true);
    await until(() => mock.state.publishes === 1, 5000, "the first snapshot");
    mock.state.faults.lossPerChunk = 0.02;
    push(0, 40);
    await until(() => forwarder!.forwarded >= 40 || spool!.stats().records === 0, 30_000, "40 records forwarded");
    mock.state.faults.lossPerChunk = 0;
    await until(() => spool!.stats().records === 0, 10_000, "the spool drained");
    expect(mock.state.connections).toBeGreaterThanOrEqual(2);
    expect(tokenCounts(mock.state.queen.delivered("edge-w"))).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
  });
});

describe("--window reaches the daemon's console session", () => {
  for (const window of [1, 2, 5]) {
    test(`serve --publish --window ${window}: a slow console never has more than ${window} lines unanswered, and does reach ${window}`, async () => {
      mock.state.faults.latencyMs = 0;
      mock.state.faults.ackDelayMs = 5; // answers one line at a time, so the queue shows the window
      const c = parseCommand([
        "serve",
        "--mock",
        "--publish",
        "--no-api",
        "--tcp-port",
        String(mock.port),
        "--auth-token",
        "w",
        "--window",
        String(window),
      ], {});
      if (c.kind !== "serve") throw new Error("expected serve");
      const bridge = await createBridge(c.options, { runtime, log: memoryLogger().log, backend: mockBackend() }, { noJournal: true });
      try {
        await until(() => mock.state.publishes === 1, 10_000, "the first publish");
        expect(mock.state.maxUnanswered).toBe(window);
      } finally {
        await bridge.stop();
      }
    });
  }
});
