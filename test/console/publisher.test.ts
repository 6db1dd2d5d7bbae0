/**
 * The publishing loop on a fake clock, against the mock console through an in-memory
 * connection: no sockets, no sleeps; every duration below is the fake clock's. Two tests at the
 * end keep a real TCP console (a restart, and stop() against a hung peer).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { memoryMockConsole, type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import type { ConsoleState } from "../../mock/console/core.ts";
import { Publisher, type PublisherOptions } from "../../src/console/publisher.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace, type NodeLogs } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { backoffDelay } from "../../src/util/backoff.ts";
import { FakeClock, memoryLogger, settle, until } from "../helpers.ts";

let clock: FakeClock;
let console_: { state: ConsoleState; connect: PublisherOptions["connect"] };
let publisher: Publisher | null = null;
let status = "";
const logs = (): NodeLogs => ({ status });
const snapshot = () => Promise.resolve(makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog(), logs)));
const BACKOFF = { baseMs: 100, capMs: 1000 };

function start(overrides: Partial<PublisherOptions> = {}) {
  const { log, lines } = memoryLogger();
  publisher = new Publisher({
    connect: console_.connect,
    target: { host: "127.0.0.1", port: 1, token: "tok", ticket: "" },
    snapshot,
    log,
    intervalMs: 60_000,
    ackTimeoutMs: 500,
    backoff: BACKOFF,
    random: () => 0.5,
    clock,
    ...overrides,
  });
  void publisher.start();
  return { publisher, lines };
}

beforeEach(() => {
  status = "";
  clock = new FakeClock();
  console_ = memoryMockConsole({ token: "tok" }, clock);
});
afterEach(async () => {
  await publisher?.stop();
  publisher = null;
});

const state = () => console_.state;

describe("Publisher on a fake clock", () => {
  test("publishes on connect, then only when the snapshot changes", async () => {
    const { publisher: p } = start({ intervalMs: 30 });
    await clock.run(0);
    expect(state().publishes).toBe(1);
    await clock.run(150); // five intervals pass, nothing changed
    expect(state().publishes).toBe(1);
    expect(p.stats.skippedUnchanged).toBe(5);
    status = '{"job":"j1","state":"QUEUED","detail":""}\n';
    await clock.run(30);
    expect(state().publishes).toBe(2);
    expect(state().tree!.nodes[0]!.status).toBe(status);
  });

  test("publishes 50 ms after notifyChange, even with a long interval, once for many notifications", async () => {
    const { publisher: p } = start();
    await clock.run(0);
    status = "changed\n";
    p.notifyChange();
    p.notifyChange();
    await clock.run(49);
    expect(state().publishes).toBe(1);
    p.notifyChange();
    await clock.run(1);
    expect(state().publishes).toBe(2);
    await clock.run(1000);
    expect(state().publishes).toBe(2); // three notifications, one publish
  });

  test("re-sends an unchanged snapshot once refreshMs has passed, not before", async () => {
    start({ intervalMs: 20, refreshMs: 100 });
    await clock.run(0);
    await clock.run(99);
    expect(state().publishes).toBe(1);
    await clock.run(1);
    expect(state().publishes).toBe(2);
  });

  test("honours delay_ms in a throttled refusal to the millisecond, keeping the connection", async () => {
    state().faults.errOnEcho = { n: 3, detail: "reason=quota detail=throttled delay_ms=300" };
    const { lines } = start();
    await clock.run(299);
    expect(state().publishes).toBe(0);
    await clock.run(1);
    expect(state().publishes).toBe(1);
    expect(
      lines.some((l) =>
        l.includes(
          "Console refused ECHO: reason=quota detail=throttled delay_ms=300; retrying the publish in 300 ms (as the console asked)",
        )
      ),
    ).toBe(true);
    expect(state().connections).toBe(1); // the refusal did not cost the connection
  });

  test("retries with exponential backoff after refusals without delay_ms", async () => {
    const { publisher: p, lines } = start({ target: { host: "127.0.0.1", port: 1, token: "wrong", ticket: "" } });
    const first = backoffDelay(0, BACKOFF, 0.5);
    const second = backoffDelay(1, BACKOFF, 0.5);
    expect(second).toBeGreaterThan(first);
    await clock.run(0);
    expect(p.stats.failures).toBe(1);
    await clock.run(first - 1);
    expect(p.stats.failures).toBe(1); // still waiting out the first delay
    await clock.run(1);
    expect(p.stats.failures).toBe(2);
    await clock.run(second - 1);
    expect(p.stats.failures).toBe(2);
    await clock.run(1);
    expect(p.stats.failures).toBe(3);
    expect(p.stats.state).not.toBe("stopped");
    expect(p.stats.lastError).toBe("Console refused AUTH: reason=invalid-token");
    expect(lines.filter((l) => l.includes("reconnecting in")).map((l) => /in (\d+) ms \(attempt (\d)\)/.exec(l)!.slice(1)))
      .toEqual([[String(first), "1"], [String(second), "2"], [String(backoffDelay(2, BACKOFF, 0.5)), "3"]]);
  });

  test("the backoff resets after a successful publish", async () => {
    state().faults.errOnEcho = { n: 2, detail: "reason=busy" };
    const { publisher: p } = start({ intervalMs: 1000 });
    await clock.run(backoffDelay(0, BACKOFF, 0.5));
    expect(state().publishes).toBe(1);
    state().faults.errOnEcho = { n: state().echoes + 1, detail: "reason=busy" };
    status = "again\n";
    p.notifyChange();
    await clock.run(50);
    expect(p.stats.failures).toBe(2);
    await clock.run(backoffDelay(0, BACKOFF, 0.5)); // attempt 0 again, not 1
    expect(state().publishes).toBe(2);
  });

  test("reconnects after the console closes mid-publish", async () => {
    state().faults.closeAfterFrames = 7;
    const { publisher: p } = start();
    await clock.run(backoffDelay(0, BACKOFF, 0.5));
    expect(state().publishes).toBe(1);
    expect(state().connections).toBe(2);
    expect(p.stats.reconnects).toBe(1);
    expect(p.stats.lastError).toBe("The console closed the connection");
  });

  test("reconnects after a garbage frame", async () => {
    state().faults.garbageAfterFrames = 3;
    const { publisher: p } = start();
    await clock.run(backoffDelay(0, BACKOFF, 0.5));
    expect(state().publishes).toBe(1);
    expect(p.stats.lastError).toContain("Cannot decode frame: length 2 is outside 4..8192");
  });

  test("an ack that never comes fails after ackTimeoutMs, then the publisher reconnects", async () => {
    state().faults.silent = true;
    const { publisher: p } = start({ ackTimeoutMs: 100 });
    await clock.run(99);
    expect(p.stats.failures).toBe(0);
    await clock.run(1);
    expect(p.stats.failures).toBe(1);
    expect(p.stats.lastError).toBe("No ack for AUTH within 100 ms");
    state().faults.silent = false;
    await clock.run(backoffDelay(0, BACKOFF, 0.5));
    expect(state().publishes).toBe(1);
  });

  test("waits out acks slower than the reference's 200 ms and skips noise", async () => {
    state().faults.ackDelayMs = 400;
    state().faults.noise = true;
    const { publisher: p } = start({ ackTimeoutMs: 1000 });
    await clock.run(400 * 30);
    expect(state().publishes).toBe(1);
    expect(p.stats.failures).toBe(0);
  });

  test("pings the console after pingIdleMs of silence, and not before", async () => {
    start({ pingIdleMs: 15_000 });
    await clock.run(0);
    const pings = () => state().linesReceived.filter((l) => l === "PING").length;
    await clock.run(14_999);
    expect(pings()).toBe(0);
    await clock.run(1);
    expect(pings()).toBe(1);
    await clock.run(15_000);
    expect(pings()).toBe(2);
  });

  test("never interleaves two publishes, however fast changes come", async () => {
    const refused: string[] = [];
    state().on((e) => e.type === "refused" && refused.push(e.reason));
    state().faults.ackDelayMs = 2;
    const { publisher: p } = start({ debounceMs: 1 });
    for (let i = 0; i < 40; i++) {
      status = `change ${i}\n`;
      p.notifyChange();
      await clock.run(3);
    }
    await clock.run(1000);
    expect(state().tree?.nodes[0]?.status).toBe("change 39\n");
    expect(refused).toEqual([]);
    const begins = state().linesReceived.filter((l) => l.includes(" begin ")).length;
    expect(begins).toBe(state().publishes);
  });

  test("stop() abandons an in-flight publish at once", async () => {
    state().faults.ackDelayMs = 5000;
    const { publisher: p } = start({ ackTimeoutMs: 10_000 });
    await clock.run(0);
    expect(state().linesReceived.length).toBe(1);
    await p.stop();
    expect(p.stats.state).toBe("stopped");
    expect(clock.now()).toBe(new FakeClock().now()); // no time had to pass
    await settle();
  });
});

describe("Publisher over real sockets", () => {
  const runtime = bunRuntime();
  let mock: MockConsole;
  beforeEach(async () => {
    mock = await startMockConsole(runtime, { token: "tok" });
  });
  afterEach(async () => {
    await publisher?.stop();
    publisher = null;
    await mock.close();
  });

  test("survives a console restart and republishes to the new one", async () => {
    const { publisher: p, lines } = start({
      connect: runtime.connect,
      target: { host: "127.0.0.1", port: mock.port, token: "tok", ticket: "" },
      clock: undefined,
      backoff: { baseMs: 20, capMs: 200 },
    });
    await until(() => mock.state.publishes === 1);
    const port = mock.port;
    await mock.close();
    mock = await startMockConsole(runtime, { token: "tok", port });
    await until(() => mock.state.publishes === 1, 5000, "republish after restart");
    expect(p.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => /WARN .*reconnecting in \d+ ms \(attempt 1\)/.test(l))).toBe(true);
  });

  test("stop() abandons a publish stuck on a real socket promptly", async () => {
    mock.state.faults.ackDelayMs = 5000;
    const { publisher: p } = start({
      connect: runtime.connect,
      target: { host: "127.0.0.1", port: mock.port, token: "tok", ticket: "" },
      clock: undefined,
      ackTimeoutMs: 10_000,
    });
    await until(() => mock.state.linesReceived.length >= 1);
    await p.stop();
    expect(p.stats.state).toBe("stopped");
  });
});
