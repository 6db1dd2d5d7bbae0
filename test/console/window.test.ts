/**
 * The console window (--window): several lines in flight, acks matched in order, never more than the
 * window unacknowledged (lines a caller gave up on included), refusals and timeouts inside a
 * window. A scripted peer stands in for the console, so each step is observed, not timed.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { ConsoleError } from "../../src/console/errors.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { echoLines, publishOnce, sendAll } from "../../src/console/publish.ts";
import { ConsoleSession } from "../../src/console/session.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { checkWindow, MAX_WINDOW } from "../../src/contract/window.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { AsyncQueue } from "../../src/util/async-queue.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { FakeClock, settle, until } from "../helpers.ts";

/** A console played by the test: what the session wrote, and a way to answer. */
function peer() {
  const incoming = new AsyncQueue<Uint8Array>();
  const decoder = new FrameDecoder();
  const received: string[] = [];
  let closed = false;
  const conn: Conn = {
    readable: incoming,
    write(bytes) {
      received.push(...decoder.push(bytes));
      return Promise.resolve();
    },
    close() {
      closed = true;
      incoming.end();
    },
  };
  return {
    conn,
    received,
    isClosed: () => closed,
    /** Sends `lines` to the session in one read. */
    say: (...lines: string[]) => incoming.push(new Uint8Array(lines.flatMap((l) => [...encodeFrame(l)]))),
  };
}

const echo = (n: number) => ({ line: `ECHO /gpu/bridge/ctl line-${n}`, verb: "ECHO" });
const ok = (n = 1) => `OK ECHO path=/gpu/bridge/ctl bytes=${5 + String(n).length}`;

describe("checkWindow()", () => {
  test("takes 1 to 7, the console's 8-line queue less one", () => {
    expect(MAX_WINDOW).toBe(7);
    expect(DEFAULTS.window).toBe(4);
    expect(checkWindow(1)).toBe(1);
    expect(checkWindow(7)).toBe(7);
    expect(() => checkWindow(8)).toThrow("Cannot use a console window of 8: it must be an integer from 1 to 7");
    expect(() => checkWindow(0)).toThrow(RangeError);
    expect(() => checkWindow(2.5)).toThrow(RangeError);
  });
});

describe("ConsoleSession's window", () => {
  test("sends up to the window before any ack, then one more per ack, and matches acks in order", async () => {
    const p = peer();
    const session = new ConsoleSession(p.conn, { window: 3 });
    const acked: number[] = [];
    const done = sendAll(session, [1, 2, 3, 4, 5].map(echo), undefined, (i) => acked.push(i));
    await settle();
    expect(p.received).toEqual(["ECHO /gpu/bridge/ctl line-1", "ECHO /gpu/bridge/ctl line-2", "ECHO /gpu/bridge/ctl line-3"]);
    expect(session.inFlight).toBe(3);
    p.say("[net-console] queue depth=3", ok());
    await settle();
    expect(acked).toEqual([0]);
    expect(p.received).toHaveLength(4);
    p.say(ok(), "PONG", ok(), ok(), ok());
    await done;
    expect(acked).toEqual([0, 1, 2, 3, 4]);
    expect(p.received).toHaveLength(5);
    expect(session.framesSent).toBe(5);
    session.close();
  });

  test("window 1 is stop-and-wait", async () => {
    const p = peer();
    const session = new ConsoleSession(p.conn, { window: 1 });
    const done = sendAll(session, [1, 2].map(echo));
    await settle();
    expect(p.received).toHaveLength(1);
    p.say(ok());
    await settle();
    expect(p.received).toHaveLength(2);
    p.say(ok());
    await done;
    session.close();
  });

  test("a refusal withdraws the unsent rest; the lines on the wire keep their slots until answered", async () => {
    const p = peer();
    const session = new ConsoleSession(p.conn, { window: 3 });
    const first = sendAll(session, [1, 2, 3, 4, 5].map(echo));
    await settle();
    p.say(ok(), "ERR ECHO reason=policy detail=invalid-payload path=/gpu/bridge/ctl error=invalid payload");
    const err = await first.catch((e) => e);
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("rejected");
    expect(err.message).toContain("Console refused ECHO: reason=policy detail=invalid-payload");
    // Lines 1-4 went out (4 after 1's ack); 5 was withdrawn. 3 and 4 are still unanswered.
    expect(p.received).toHaveLength(4);
    expect(session.inFlight).toBe(2);
    // A retry may use only the one free slot until those two are answered.
    const retry = sendAll(session, [6, 7, 8].map(echo));
    await settle();
    expect(p.received).toHaveLength(5);
    expect(p.received.at(-1)).toBe("ECHO /gpu/bridge/ctl line-6");
    // The stale answers are consumed by the abandoned lines, not taken for the retry's.
    p.say("ERR ECHO reason=policy detail=invalid-payload path=/gpu/bridge/ctl", ok());
    await settle();
    expect(p.received).toHaveLength(7);
    p.say(ok(), ok(), ok());
    await retry;
    session.close();
  });

  test("an ack naming another path is not this line's: the connection ends as a protocol error", async () => {
    const p = peer();
    const seen: string[] = [];
    const session = new ConsoleSession(p.conn, { window: 2, onOther: (l) => seen.push(l) });
    const done = session.request("ECHO /queen/telemetry/e/seg/seg-000001 {}", "ECHO").catch((e) => e);
    await settle();
    p.say("OK ECHO path=/gpu/bridge/ctl bytes=3", "OK ECHO path=/queen/telemetry/e/seg/seg-000001 bytes=2");
    const err = await done;
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("protocol");
    expect(err.message).toBe(
      "Unmatched ack from the console (ECHO of /queen/telemetry/e/seg/seg-000001 is awaited): OK ECHO path=/gpu/bridge/ctl bytes=3",
    );
    expect(seen).toEqual([]);
    expect(p.isClosed()).toBe(true);
  });

  test("a missing ack times out, closes the connection and fails every line in flight", async () => {
    const p = peer();
    const clock = new FakeClock();
    const session = new ConsoleSession(p.conn, { window: 4, ackTimeoutMs: 50, clock });
    const acks = [1, 2, 3].map((n) => session.request(echo(n).line, "ECHO").catch((e) => e));
    await clock.run(49);
    expect(session.closed).toBe(false);
    await clock.run(1);
    const [a, b, c] = await Promise.all(acks);
    expect(a.kind).toBe("timeout");
    expect(a.message).toBe("No ack for ECHO within 50 ms");
    expect(b.kind).toBe("timeout");
    expect(c.kind).toBe("timeout");
    expect(session.closed).toBe(true);
    expect(p.isClosed()).toBe(true);
  });

  test("listings are pipelined: each one's content is what comes between its ack and its END", async () => {
    const p = peer();
    const session = new ConsoleSession(p.conn, { window: 4 });
    const before = session.request(echo(1).line, "ECHO");
    const first = session.requestLines("CAT /queen/telemetry/e/latest", "CAT");
    const second = session.requestLines("CAT /gpu/GPU-0/status", "CAT");
    const after = session.request(echo(2).line, "ECHO");
    await settle();
    expect(p.received).toEqual([
      "ECHO /gpu/bridge/ctl line-1",
      "CAT /queen/telemetry/e/latest",
      "CAT /gpu/GPU-0/status",
      "ECHO /gpu/bridge/ctl line-2",
    ]);
    // Content that looks like acks, even the next line's, is content up to END.
    p.say(ok(), "OK CAT path=/queen/telemetry/e/latest bytes=11", "OK ECHO path=/gpu/bridge/ctl bytes=6", "END");
    p.say("OK CAT path=/gpu/GPU-0/status data=x", "x", "OK CAT path=/gpu/GPU-0/status data=x", "END");
    p.say(ok(2));
    expect(await first).toEqual(["OK ECHO path=/gpu/bridge/ctl bytes=6"]);
    expect(await second).toEqual(["x", "OK CAT path=/gpu/GPU-0/status data=x"]);
    await Promise.all([before, after]);
    expect(session.closed).toBe(false);
    session.close();
  });
});

describe("publishing through the window, on a mock console", () => {
  const runtime = bunRuntime();
  const ns = buildNamespace(MOCK_GPUS, builtinCatalog());
  const snap = makeSnapshot(ns);
  const lines = publishLines(snap);
  let mock: MockConsole;
  const target = () => ({ host: "127.0.0.1", port: mock.port, token: "w", ticket: "" });
  beforeEach(async () => (mock = await startMockConsole(runtime, { token: "w" })));
  afterEach(() => mock.close());

  for (const window of [1, DEFAULTS.window, MAX_WINDOW]) {
    test(`window ${window}: the one-shot publish sends the reference's frames in the reference's order`, async () => {
      let dropped = 0;
      mock.state.on((e) => void (e.type === "dropped" && dropped++));
      mock.state.faults.latencyMs = 5;
      await publishOnce(runtime.connect, target(), snap, lines, { window });
      expect(mock.state.linesReceived).toEqual(["AUTH w", "ATTACH queen ", ...echoLines(lines).map((l) => l.line)]);
      expect(mock.state.tree).toEqual(ns);
      expect(dropped).toBe(0);
    });
  }

  test("a refused AUTH leaves the snapshot lines behind it unapplied", async () => {
    const err = await publishOnce(runtime.connect, { ...target(), token: "nope" }, snap, lines, { window: MAX_WINDOW }).catch((e) => e);
    expect(err.message).toBe("Console refused AUTH: reason=invalid-token");
    expect(mock.state.publishes).toBe(0);
    expect(mock.state.linesReceived.filter((l) => l.startsWith("ECHO")).length).toBeLessThanOrEqual(MAX_WINDOW - 1);
  });

  test("a line refused mid-window: the publish fails with that refusal and nothing lands", async () => {
    mock.state.faults.errOnEcho = { n: 5, detail: "reason=policy detail=busy" };
    const err = await publishOnce(runtime.connect, target(), snap, lines).catch((e) => e);
    expect(err.message).toBe("Console refused ECHO: reason=policy detail=busy");
    await until(() => mock.state.connections === 1 && mock.state.linesReceived.length >= 7, 2000, "the window's lines");
    expect(mock.state.publishes).toBe(0);
  });
});
