/**
 * ConsoleSession against a scripted peer over an in-memory connection, on a fake clock: the
 * send/ack path, noise, refusals, deadlines and hang-ups, with no socket and no sleep.
 */
import { describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { ConsoleSession } from "../../src/console/session.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { memoryPair } from "../../src/runtime/memory.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { FakeClock, settle } from "../helpers.ts";

/** The far end: records the lines it receives; `reply` sends frames back. */
function peer(conn: Conn) {
  const received: string[] = [];
  void (async () => {
    const d = new FrameDecoder();
    for await (const chunk of conn.readable) received.push(...d.push(chunk));
  })();
  return { received, reply: (...lines: string[]) => conn.write(new Uint8Array(lines.flatMap((l) => [...encodeFrame(l)]))) };
}

function setup(ackTimeoutMs = 1000) {
  const clock = new FakeClock();
  const [client, server] = memoryPair();
  const other: string[] = [];
  const closes: ConsoleError[] = [];
  const session = new ConsoleSession(client, { ackTimeoutMs, clock, onOther: (l) => other.push(l), onClose: (e) => closes.push(e) });
  return { clock, session, peer: peer(server), server, other, closes };
}

const rejection = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as ConsoleError);

describe("ConsoleSession", () => {
  test("request() sends one frame and resolves with its verb's ack, passing noise to onOther", async () => {
    const { session, peer: p, other } = setup();
    const acked = session.request("ECHO /gpu/bridge/ctl end", "ECHO");
    await settle();
    expect(p.received).toEqual(["ECHO /gpu/bridge/ctl end"]);
    await p.reply("[net-console] hello", "PONG", "END", "OK ECHO path=/gpu/bridge/ctl bytes=3");
    expect(await acked).toMatchObject({ ok: true, verb: "ECHO", detail: "path=/gpu/bridge/ctl bytes=3" });
    expect(other).toEqual(["[net-console] hello", "PONG", "END"]);
    expect(session.framesSent).toBe(1);
  });

  test("an ack split across reads, one byte at a time, still resolves the request", async () => {
    const { session, server } = setup();
    const acked = session.request("PING", "PING");
    for (const byte of encodeFrame("OK PING reply=pong")) await server.write(new Uint8Array([byte]));
    expect((await acked).detail).toBe("reply=pong");
  });

  test("ERR rejects with kind 'rejected', carrying the ack; the session stays open", async () => {
    const { session, peer: p } = setup();
    const acked = rejection(session.request("ATTACH queen ", "ATTACH"));
    await p.reply("ERR ATTACH reason=quota detail=throttled delay_ms=250");
    const e = await acked;
    expect(e?.kind).toBe("rejected");
    expect(e?.message).toBe("Console refused ATTACH: reason=quota detail=throttled delay_ms=250");
    expect(e?.ack?.fields.delay_ms).toBe("250");
    expect(session.closed).toBe(false);
  });

  test("no ack within ackTimeoutMs of the fake clock rejects with kind 'timeout', not a moment before", async () => {
    const { session, clock } = setup(5000);
    let settled: ConsoleError | null | undefined;
    void rejection(session.request("AUTH x", "AUTH")).then((e) => (settled = e));
    await clock.run(4999);
    expect(settled).toBeUndefined();
    await clock.run(1);
    expect(settled?.kind).toBe("timeout");
    expect(settled?.message).toBe("No ack for AUTH within 5000 ms");
    expect(clock.pending).toBe(0); // nothing left armed
  });

  test("an ack clears its deadline", async () => {
    const { session, peer: p, clock } = setup();
    const acked = session.request("PING", "PING");
    await p.reply("OK PING");
    await acked;
    expect(clock.pending).toBe(0);
  });

  test("the peer hanging up rejects the request with kind 'closed' and calls onClose once", async () => {
    const { session, server, closes } = setup();
    const acked = rejection(session.request("PING", "PING"));
    await settle();
    server.close();
    expect((await acked)?.kind).toBe("closed");
    expect(closes.map((e) => e.message)).toEqual(["The console closed the connection"]);
    expect(session.closed).toBe(true);
    expect((await rejection(session.request("PING", "PING")))?.kind).toBe("closed");
  });

  test("a frame with an impossible length ends the session with kind 'protocol'", async () => {
    const { session, server } = setup();
    const acked = rejection(session.request("PING", "PING"));
    await server.write(new Uint8Array([2, 0, 0, 0]));
    expect((await acked)?.kind).toBe("protocol");
  });

  test("an ack in the same read as a bad header is delivered before the session fails", async () => {
    const { session, server, closes } = setup();
    const acked = session.request("PING", "PING");
    await server.write(new Uint8Array([...encodeFrame("OK PING reply=pong"), 2, 0, 0, 0]));
    expect((await acked).detail).toBe("reply=pong");
    await settle();
    expect(closes.map((e) => e.kind)).toEqual(["protocol"]);
  });

  test("an aborted signal abandons the request at once", async () => {
    const { session } = setup();
    const stop = new AbortController();
    const acked = rejection(session.request("PING", "PING", stop.signal));
    stop.abort();
    expect((await acked)?.message).toBe("Abandoned PING: shutting down");
  });

  test("with window 1, a second request waits for the first one's ack before it is sent", async () => {
    const clock = new FakeClock();
    const [client, server] = memoryPair();
    const p = peer(server);
    const session = new ConsoleSession(client, { clock, window: 1 });
    const first = session.request("PING", "PING");
    const second = session.request("ECHO /gpu/bridge/ctl x", "ECHO");
    await settle();
    expect(p.received).toEqual(["PING"]);
    await p.reply("PONG", "OK PING reply=pong");
    await first;
    await settle();
    expect(p.received).toEqual(["PING", "ECHO /gpu/bridge/ctl x"]);
    await p.reply("OK ECHO path=/gpu/bridge/ctl bytes=1");
    await second;
  });

  test("requestLines() collects the lines between the ack and END", async () => {
    const { session, peer: p } = setup();
    const lines = session.requestLines("CAT /queen/telemetry/d/latest", "CAT");
    await settle();
    await p.reply("OK CAT path=/queen/telemetry/d/latest data=seg-000002", "seg-000002", "END");
    expect(await lines).toEqual(["seg-000002"]);
  });

  test("requestLines() times out on the fake clock when END never comes", async () => {
    const { session, peer: p, clock } = setup(300);
    const lines = rejection(session.requestLines("LS /gpu", "LS"));
    await settle();
    await p.reply("OK LS path=/gpu entries=1", "bridge");
    await clock.run(300);
    expect((await lines)?.message).toBe("No END after LS within 300 ms");
  });
});
