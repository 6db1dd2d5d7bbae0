import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { Publisher, type PublisherOptions } from "../../src/console/publisher.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace, type NodeLogs } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { memoryLogger, until } from "../helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let publisher: Publisher | null = null;
let status = "";
const logs = (): NodeLogs => ({ status });
const snapshot = () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog(), logs)));

function start(overrides: Partial<PublisherOptions> = {}) {
  const { log, lines } = memoryLogger();
  publisher = new Publisher({
    connect: runtime.connect,
    target: { host: "127.0.0.1", port: mock.port, token: "tok", ticket: "" },
    snapshot,
    log,
    intervalMs: 60_000,
    ackTimeoutMs: 500,
    backoff: { baseMs: 20, capMs: 200 },
    ...overrides,
  });
  void publisher.start();
  return { publisher, lines };
}

beforeEach(async () => {
  status = "";
  mock = await startMockConsole(runtime, { token: "tok" });
});
afterEach(async () => {
  await publisher?.stop();
  publisher = null;
  await mock.close();
});

describe("Publisher", () => {
  test("publishes on connect, then only when the snapshot changes", async () => {
    const { publisher: p } = start({ intervalMs: 30 });
    await until(() => mock.state.publishes === 1, 3000, "first publish");
    await Bun.sleep(150); // several intervals pass, nothing changed
    expect(mock.state.publishes).toBe(1);
    expect(p.stats.skippedUnchanged).toBeGreaterThanOrEqual(2);
    status = '{"job":"j1","state":"QUEUED","detail":""}\n';
    await until(() => mock.state.publishes === 2, 3000, "publish after the change");
    expect(mock.state.tree!.nodes[0]!.status).toBe(status);
  });

  test("publishes within the debounce after notifyChange, even with a long interval", async () => {
    const { publisher: p } = start();
    await until(() => mock.state.publishes === 1);
    status = "changed\n";
    const t0 = performance.now();
    p.notifyChange();
    p.notifyChange();
    p.notifyChange();
    await until(() => mock.state.publishes === 2, 3000, "debounced publish");
    expect(performance.now() - t0).toBeLessThan(1000);
    await Bun.sleep(100);
    expect(mock.state.publishes).toBe(2); // three notifications, one publish
  });

  test("re-sends an unchanged snapshot once refreshMs has passed", async () => {
    start({ intervalMs: 20, refreshMs: 100 });
    await until(() => mock.state.publishes >= 3, 3000, "refresh publishes");
  });

  test("survives a console restart and republishes to the new one", async () => {
    const { publisher: p, lines } = start();
    await until(() => mock.state.publishes === 1);
    const port = mock.port;
    await mock.close();
    mock = await startMockConsole(runtime, { token: "tok", port });
    await until(() => mock.state.publishes === 1, 5000, "republish after restart");
    expect(p.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => /WARN .*reconnecting in \d+ ms \(attempt 1\)/.test(l))).toBe(true);
  });

  test("honours delay_ms in a throttled refusal, then publishes the whole snapshot again", async () => {
    mock.state.faults.errOnEcho = { n: 3, detail: "reason=quota detail=throttled delay_ms=300" };
    const { lines } = start();
    const t0 = performance.now();
    await until(() => mock.state.publishes === 1, 5000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(lines.some((l) => l.includes("Console refused ECHO: reason=quota detail=throttled delay_ms=300; retrying the publish in 300 ms (as the console asked)"))).toBe(true);
    expect(mock.state.connections).toBe(1); // the refusal did not cost the connection
  });

  test("retries with backoff after a refusal without delay_ms", async () => {
    mock.state.faults.errOnEcho = { n: 2, detail: "reason=busy" };
    const { publisher: p } = start();
    await until(() => mock.state.publishes === 1, 5000);
    expect(p.stats.failures).toBe(1);
  });

  test("reconnects after the console closes mid-publish", async () => {
    mock.state.faults.closeAfterFrames = 7;
    const { publisher: p } = start();
    await until(() => mock.state.publishes === 1, 5000);
    expect(mock.state.connections).toBe(2);
    expect(p.stats.lastError).toBe("The console closed the connection");
  });

  test("reconnects after a garbage frame", async () => {
    mock.state.faults.garbageAfterFrames = 3;
    const { publisher: p } = start();
    await until(() => mock.state.publishes === 1, 5000);
    expect(p.stats.lastError).toContain("Cannot decode frame: length 2 is outside 4..8192");
  });

  test("reconnects after an ack timeout", async () => {
    mock.state.faults.silent = true;
    const { publisher: p } = start({ ackTimeoutMs: 100 });
    await until(() => p.stats.failures >= 1, 3000);
    expect(p.stats.lastError).toBe("No ack for AUTH within 100 ms");
    mock.state.faults.silent = false;
    await until(() => mock.state.publishes === 1, 5000);
  });

  test("waits out slow acks and skips noise", async () => {
    mock.state.faults.ackDelayMs = 40;
    mock.state.faults.noise = true;
    const { publisher: p } = start({ ackTimeoutMs: 1000 });
    await until(() => mock.state.publishes === 1, 5000);
    expect(p.stats.failures).toBe(0);
  });

  test("keeps retrying a refused AUTH instead of exiting", async () => {
    const { publisher: p } = start({ target: { host: "127.0.0.1", port: mock.port, token: "wrong", ticket: "" } });
    await until(() => p.stats.failures >= 3, 5000);
    expect(p.stats.state).not.toBe("stopped");
    expect(p.stats.lastError).toBe("Console refused AUTH: reason=invalid-token");
  });

  test("pings the console when idle", async () => {
    start({ pingIdleMs: 60 });
    await until(() => mock.state.linesReceived.filter((l) => l === "PING").length >= 2, 3000, "two pings");
  });

  test("never interleaves two publishes, however fast changes come", async () => {
    const refused: string[] = [];
    mock.state.on((e) => e.type === "refused" && refused.push(e.reason));
    mock.state.faults.ackDelayMs = 2;
    const { publisher: p } = start({ debounceMs: 1 });
    for (let i = 0; i < 40; i++) {
      status = `change ${i}\n`;
      p.notifyChange();
      await Bun.sleep(3);
    }
    await until(() => mock.state.tree?.nodes[0]?.status === "change 39\n", 5000, "the last change");
    expect(refused).toEqual([]);
    const begins = mock.state.linesReceived.filter((l) => l.includes(" begin ")).length;
    expect(begins).toBe(mock.state.publishes);
  });

  test("stop() abandons an in-flight publish promptly", async () => {
    mock.state.faults.ackDelayMs = 5000;
    const { publisher: p } = start({ ackTimeoutMs: 10_000 });
    await until(() => mock.state.linesReceived.length >= 1);
    const t0 = performance.now();
    await p.stop();
    expect(performance.now() - t0).toBeLessThan(500);
    expect(p.stats.state).toBe("stopped");
  });
});
