import { describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { ConsoleConnection, ConsoleState, CTL, DEFAULT_KEEP_LINES, STATUS } from "../../mock/console/core.ts";
import { startMockConsole } from "../../mock/console/server.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { until } from "../helpers.ts";

const ns = buildNamespace(MOCK_GPUS, builtinCatalog());

function attached(state = new ConsoleState({ token: "t" })) {
  const c = new ConsoleConnection(state);
  expect(c.handle("AUTH t").lines).toEqual(["OK AUTH detail=welcome"]);
  expect(c.handle("ATTACH queen ").lines).toEqual(["OK ATTACH role=queen"]);
  return { c, state };
}

describe("ConsoleConnection", () => {
  test("refuses everything but AUTH before authentication", () => {
    const c = new ConsoleConnection(new ConsoleState({ token: "t" }));
    expect(c.handle("ECHO /gpu/bridge/ctl end").lines).toEqual(["ERR ECHO reason=unauthenticated"]);
    expect(c.handle("AUTH nope")).toEqual({ lines: ["ERR AUTH reason=invalid-token"], close: true });
  });

  test("starts a 90 s cooldown after 3 failed logins within 60 s", () => {
    let now = 1_000_000;
    const state = new ConsoleState({ token: "t", now: () => now });
    for (let i = 0; i < 3; i++) new ConsoleConnection(state).handle("AUTH bad");
    expect(new ConsoleConnection(state).handle("AUTH t").lines).toEqual(["ERR AUTH reason=cooldown delay_ms=90000"]);
    now += 90_001;
    expect(new ConsoleConnection(state).handle("AUTH t").lines).toEqual(["OK AUTH detail=welcome"]);
  });

  test("answers PING with PONG then the ack", () => {
    expect(attached().c.handle("PING").lines).toEqual(["PONG", "OK PING reply=pong"]);
  });

  test("lands a snapshot and serves the tree with CAT and LS", () => {
    const { c, state } = attached();
    for (const l of publishLines(makeSnapshot(ns))) {
      expect(c.handle(`ECHO ${CTL} ${l}`).lines[0]).toStartWith(`OK ECHO path=${CTL} bytes=`);
    }
    expect(state.tree).toEqual(ns);
    expect(c.handle("CAT /gpu/GPU-0/ctl").lines).toEqual(["OK CAT path=/gpu/GPU-0/ctl data=LEASE GPU-0", "LEASE GPU-0", "END"]);
    expect(c.handle(`CAT ${STATUS}`).lines[1]).toStartWith("state=ok bytes=1477 sha256=");
    expect(c.handle("LS /gpu").lines).toEqual([
      "OK LS path=/gpu entries=5",
      "bridge",
      "models",
      "telemetry",
      "GPU-0",
      "GPU-1",
      "END",
    ]);
    expect(c.handle("LS /gpu/GPU-1").lines.slice(1, -1)).toEqual(["info", "ctl", "lease", "status"]);
    expect(c.handle("CAT /gpu/nope").lines).toEqual(["ERR CAT reason=not-found path=/gpu/nope"]);
  });

  test("refuses a bad ctl line with the VM's exact ack and an err status", () => {
    const { c, state } = attached();
    expect(c.handle(`ECHO ${CTL} b64:AAAA`).lines).toEqual([
      "ERR ECHO reason=policy detail=invalid-payload path=/gpu/bridge/ctl error=invalid payload",
    ]);
    expect(state.read(STATUS)).toBe("state=err reason=b64 data before begin");
  });

  test("enforces the echo payload, path and command limits, and queen-only writes", () => {
    const { c } = attached();
    expect(c.handle(`ECHO ${CTL} ${"x".repeat(129)}`).lines[0]).toStartWith("ERR ECHO reason=policy detail=invalid-payload");
    expect(c.handle(`ECHO /${"p".repeat(96)} x`).lines).toEqual(["ERR ECHO reason=policy detail=path-too-long"]);
    expect(c.handle(`ECHO ${CTL} ${"x".repeat(250)}`).lines[0]).toStartWith("ERR ECHO reason=too-long");
    const w = new ConsoleConnection(new ConsoleState({ token: "t" }));
    w.handle("AUTH t");
    expect(w.handle("ATTACH worker-gpu x").lines).toEqual(["OK ATTACH role=worker-gpu"]);
    expect(w.handle(`ECHO ${CTL} end`).lines).toEqual([`ERR ECHO reason=policy detail=queen-only path=${CTL}`]);
  });
});

describe("the mock console's transcript", () => {
  test("keeps a bounded window of the newest lines however many arrive, and counts them all", () => {
    const state = new ConsoleState({ token: "t" });
    const c = new ConsoleConnection(state);
    let held = 0;
    for (let i = 0; i < 100_000; i++) {
      c.handle(`PING ${i}`);
      held = Math.max(held, state.linesHeld);
    }
    expect(held).toBeLessThanOrEqual(DEFAULT_KEEP_LINES + 256);
    expect(state.linesCounted).toBe(100_000);
    expect(state.linesReceived).toHaveLength(DEFAULT_KEEP_LINES);
    expect(state.linesReceived[0]).toBe(`PING ${100_000 - DEFAULT_KEEP_LINES}`);
    expect(state.linesReceived.at(-1)).toBe("PING 99999");
  });

  test("a test that needs the whole transcript asks for it", () => {
    const state = new ConsoleState({ token: "t", keepLines: Infinity });
    const c = new ConsoleConnection(state);
    for (let i = 0; i < 5000; i++) c.handle(`PING ${i}`);
    expect(state.linesReceived).toHaveLength(5000);
    expect(() => new ConsoleState({ token: "t", keepLines: 0 })).toThrow("keepLines must be at least 1, got 0");
  });
});

describe("an older console (faults.noReadback)", () => {
  test("answers CAT and LS ERR <VERB> reason=unsupported, and ECHO as usual", () => {
    const state = new ConsoleState({ token: "t" });
    state.faults.noReadback = true;
    const c = new ConsoleConnection(state);
    c.handle("AUTH t");
    c.handle("ATTACH queen ");
    expect(c.handle("CAT /gpu/bridge/status").lines).toEqual(["ERR CAT reason=unsupported"]);
    expect(c.handle("LS /gpu").lines).toEqual(["ERR LS reason=unsupported"]);
    expect(c.handle("ECHO /gpu/bridge/ctl end").lines[0]).toBe(
      `ERR ECHO reason=policy detail=invalid-payload path=${CTL} error=invalid payload`,
    );
    state.faults.noReadback = false;
    expect(c.handle("CAT /gpu/bridge/status").lines[0]).toStartWith("OK CAT path=/gpu/bridge/status");
  });
});

describe("the mock console server", () => {
  test("closes a connection that does not AUTH within the deadline", async () => {
    const mock = await startMockConsole(bunRuntime(), { token: "t", authTimeoutMs: 100 });
    const closed: number[] = [];
    mock.state.on((e) => e.type === "disconnect" && closed.push(e.conn));
    const conn = await bunRuntime().connect("127.0.0.1", mock.port);
    await until(() => closed.length === 1, 2000, "the auth deadline");
    conn.close();
    await mock.close();
  });

  test("keeps only the newest 8 queued lines, dropping the oldest, as Cohesix does", async () => {
    const mock = await startMockConsole(bunRuntime(), { token: "t" });
    const dropped: string[] = [];
    mock.state.on((e) => e.type === "dropped" && dropped.push(e.line));
    const conn = await bunRuntime().connect("127.0.0.1", mock.port);
    const reader = conn.readable[Symbol.asyncIterator]();
    const dec = new FrameDecoder();
    const acks: string[] = [];
    const readAcks = async (n: number) => {
      while (acks.length < n) acks.push(...dec.push((await reader.next()).value).filter((l) => l.startsWith("OK ")));
    };
    await conn.write(encodeFrame("AUTH t"));
    await readAcks(1);
    // Twelve lines in one write, without waiting for acks: the four oldest are dropped.
    mock.state.faults.ackDelayMs = 20;
    await conn.write(new Uint8Array(Array.from({ length: 12 }, (_, i) => [...encodeFrame(`PING ${i}`)]).flat()));
    await readAcks(9);
    expect(dropped).toEqual(["PING 0", "PING 1", "PING 2", "PING 3"]);
    expect(mock.state.linesReceived.slice(1)).toEqual(Array.from({ length: 8 }, (_, i) => `PING ${i + 4}`));
    conn.close();
    await mock.close();
  });
});
