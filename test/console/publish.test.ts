import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { ConsoleError } from "../../src/console/errors.ts";
import { publishOnce } from "../../src/console/publish.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";

const runtime = bunRuntime();
const ns = buildNamespace(MOCK_GPUS, builtinCatalog());
const snap = makeSnapshot(ns);
const lines = publishLines(snap);
let mock: MockConsole;
const target = () => ({ host: "127.0.0.1", port: mock.port, token: "s3cret", ticket: "" });

beforeEach(async () => (mock = await startMockConsole(runtime, { token: "s3cret" })));
afterEach(() => mock.close());

describe("publishOnce()", () => {
  test("lands the snapshot in the console's /gpu tree", async () => {
    const report = await publishOnce(runtime.connect, target(), snap, lines);
    expect(report).toMatchObject({ bytes: 1477, sha256: snap.sha256, frames: 20 });
    expect(mock.state.tree).toEqual(ns);
    expect(mock.state.read("/gpu/bridge/status")).toBe(`state=ok bytes=1477 sha256=${snap.sha256}`);
    expect(mock.state.read("/gpu/GPU-1/info")).toBe(ns.nodes[1]!.info);
    expect(mock.state.linesReceived.slice(0, 3)).toEqual(["AUTH s3cret", "ATTACH queen ", `ECHO /gpu/bridge/ctl ${lines[0]}`]);
  });

  test("skips interleaved noise", async () => {
    mock.state.faults.noise = true;
    await publishOnce(runtime.connect, target(), snap, lines);
    expect(mock.state.publishes).toBe(1);
  });

  test("waits for slow acks instead of giving up", async () => {
    mock.state.faults.ackDelayMs = 300;
    const report = await publishOnce(runtime.connect, target(), snap, lines.slice(0, 1));
    expect(report.durationMs).toBeGreaterThanOrEqual(900);
  });

  test("quotes the server's refusal of AUTH", async () => {
    const err = await publishOnce(runtime.connect, { ...target(), token: "wrong" }, snap, lines).catch((e) => e);
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("rejected");
    expect(err.message).toBe("Console refused AUTH: reason=invalid-token");
  });

  test("quotes an ATTACH refusal", async () => {
    mock.state.faults.attachRefusal = "reason=policy detail=denied";
    const err = await publishOnce(runtime.connect, target(), snap, lines).catch((e) => e);
    expect(err.message).toBe("Console refused ATTACH: reason=policy detail=denied");
  });

  test("names a refused connection", async () => {
    const port = mock.port;
    await mock.close();
    const err = await publishOnce(runtime.connect, { ...target(), port }, snap, lines).catch((e) => e);
    expect(err.kind).toBe("refused");
    expect(err.message).toStartWith(`Cannot connect to the console at 127.0.0.1:${port}`);
  });

  test("names a closed socket", async () => {
    mock.state.faults.closeAfterFrames = 4;
    const err = await publishOnce(runtime.connect, target(), snap, lines).catch((e) => e);
    expect(err.kind).toBe("closed");
    expect(err.message).toBe("The console closed the connection");
  });

  test("names an ack timeout", async () => {
    mock.state.faults.silent = true;
    const err = await publishOnce(runtime.connect, target(), snap, lines, { ackTimeoutMs: 150 }).catch((e) => e);
    expect(err.kind).toBe("timeout");
    expect(err.message).toBe("No ack for AUTH within 150 ms");
  });
});
