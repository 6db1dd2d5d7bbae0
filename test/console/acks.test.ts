/**
 * Every ack must answer its own line: the verb, the path it names, an ECHO's byte count, in
 * order, one per line in flight. A duplicated, late, reordered or unsolicited ack ends the
 * attempt as a protocol error, since taken for the next line's answer it would fake a publish.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { ConsoleSession } from "../../src/console/session.ts";
import { Publisher } from "../../src/console/publisher.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { memoryPair } from "../../src/runtime/memory.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { FakeClock, memoryLogger, settle, until } from "../helpers.ts";
import { scriptedConsole } from "./scripted-conn.ts";

function setup(window = 4) {
  const clock = new FakeClock();
  const [client, server] = memoryPair();
  const other: string[] = [];
  const closes: ConsoleError[] = [];
  const session = new ConsoleSession(client, {
    ackTimeoutMs: 1000,
    clock,
    window,
    onOther: (l) => other.push(l),
    onClose: (e) => closes.push(e),
  });
  const received: string[] = [];
  void (async () => {
    const d = new FrameDecoder();
    for await (const chunk of (server as Conn).readable) received.push(...d.push(chunk));
  })();
  const reply = (...lines: string[]) => server.write(new Uint8Array(lines.flatMap((l) => [...encodeFrame(l)])));
  return { session, reply, received, other, closes };
}

const outcome = (p: Promise<unknown>) => p.then((v) => v, (e: unknown) => e as ConsoleError);
const CTL = "/gpu/bridge/ctl";

describe("acks that answer no line in flight", () => {
  test("a duplicated ack is not taken for the next line's: the attempt fails as a protocol error", async () => {
    const { session, reply, closes, other } = setup();
    const begin = outcome(session.request(`ECHO ${CTL} begin bytes=1`, "ECHO"));
    const data = outcome(session.request(`ECHO ${CTL} b64:QQ==`, "ECHO"));
    await settle();
    await reply(`OK ECHO path=${CTL} bytes=13`, `OK ECHO path=${CTL} bytes=13`);
    expect((await begin as { ok: boolean }).ok).toBe(true);
    const e = await data as ConsoleError;
    expect(e.kind).toBe("protocol");
    expect(e.message).toBe(`Unmatched ack from the console (the ECHO of 8 bytes to ${CTL} is awaited): OK ECHO path=${CTL} bytes=13`);
    expect(session.closed).toBe(true);
    expect(closes).toHaveLength(1);
    expect(other).toEqual([]);
  });

  test("a duplicate that looks like the next line's ack is caught by the surplus, with nothing in flight", async () => {
    const { session, reply } = setup();
    const a = outcome(session.request(`ECHO ${CTL} b64:QUFB`, "ECHO"));
    const b = outcome(session.request(`ECHO ${CTL} b64:QkJC`, "ECHO"));
    await settle();
    await reply(`OK ECHO path=${CTL} bytes=8`, `OK ECHO path=${CTL} bytes=8`);
    await Promise.all([a, b]);
    expect(session.closed).toBe(false);
    await reply(`OK ECHO path=${CTL} bytes=8`);
    await settle();
    expect(session.closedError?.kind).toBe("protocol");
    expect(session.closedError?.message).toContain("nothing is in flight");
  });

  test("an unsolicited ack, an ERR for another verb, and reordered acks each end the connection", async () => {
    const cases: [string[], string[], string][] = [
      [[], ["OK ECHO path=/gpu/GPU-0/ctl bytes=3"], "nothing is in flight"],
      [[`ECHO ${CTL} end`], ["ERR CAT reason=not-found path=/x"], "ECHO is awaited"],
      [[`ECHO ${CTL} end`, `ECHO ${CTL} begin x`], [`OK ECHO path=${CTL} bytes=7`], `the ECHO of 3 bytes to ${CTL} is awaited`],
      [[`ECHO ${CTL} end`], ["OK ECHO path=/gpu/GPU-0/status bytes=3"], `ECHO of ${CTL} is awaited`],
      [["PING"], ["PONG", "OK ATTACH role=queen"], "PING is awaited"],
    ];
    for (const [sent, answers, why] of cases) {
      const { session, reply } = setup();
      const pending = sent.map((l) => outcome(session.request(l, l.split(" ")[0]!)));
      await settle();
      await reply(...answers);
      await settle();
      expect(session.closedError?.kind).toBe("protocol");
      expect(session.closedError?.message).toContain(why);
      for (const p of pending) expect((await p as ConsoleError).kind).toBe("protocol");
    }
  });

  test("a minimal console's ack without path or bytes still answers its line; noise is skipped", async () => {
    const { session, reply, other } = setup();
    const a = outcome(session.request(`ECHO ${CTL} end`, "ECHO"));
    await settle();
    await reply("[net-console] hi", "PONG", "END", "OK ECHO");
    expect((await a as { ok: boolean }).ok).toBe(true);
    expect(other).toEqual(["[net-console] hi", "PONG", "END"]);
    expect(session.closed).toBe(false);
  });
});

describe("listings answer the path asked for", () => {
  test("a CAT answered for another path, or an ERR naming another, is a protocol error, not that file's content", async () => {
    for (const ack of ["OK CAT path=/gpu/GPU-1/lease data=x", "ERR CAT reason=not-found path=/gpu/GPU-1/lease"]) {
      const { session, reply } = setup();
      const cat = outcome(session.requestLines("CAT /gpu/GPU-0/lease", "CAT"));
      await settle();
      await reply(ack, '{"x":1}', "END");
      const e = await cat as ConsoleError;
      expect(e.kind).toBe("protocol");
      expect(e.message).toContain("CAT of /gpu/GPU-0/lease is awaited");
    }
  });

  test("a CAT ack sent twice is not taken for the file's first line", async () => {
    const { session, reply } = setup();
    const cat = outcome(session.requestLines("CAT /gpu/GPU-0/ctl", "CAT"));
    await settle();
    await reply("OK CAT path=/gpu/GPU-0/ctl data=", "OK CAT path=/gpu/GPU-0/ctl data=", "END");
    const e = await cat as ConsoleError;
    expect(e.kind).toBe("protocol");
    expect(e.message).toBe("Console sent the ack twice: OK CAT path=/gpu/GPU-0/ctl data=");
    const good = setup();
    const ok = good.session.requestLines("CAT /gpu/GPU-0/ctl", "CAT");
    await settle();
    await good.reply(
      "OK CAT path=/gpu/GPU-0/ctl data=OK CAT path=/gpu/GPU-0/ctl data=",
      "LEASE GPU-0",
      "OK CAT path=/gpu/GPU-0/ctl data=",
      "END",
    );
    expect(await ok).toEqual(["LEASE GPU-0", "OK CAT path=/gpu/GPU-0/ctl data="]);
  });

  test("an LS whose lines do not match its announced count is a protocol error", async () => {
    const { session, reply } = setup();
    const ls = outcome(session.requestLines("LS /gpu", "LS"));
    await settle();
    await reply("OK LS path=/gpu entries=3", "bridge", "GPU-0", "END");
    const e = await ls as ConsoleError;
    expect(e.kind).toBe("protocol");
    expect(e.message).toBe("Console listed 2 entries after announcing 3");
    const good = setup();
    const ok = good.session.requestLines("LS /gpu", "LS");
    await settle();
    await good.reply("OK LS path=/gpu entries=2", "bridge", "GPU-0", "END");
    expect(await ok).toEqual(["bridge", "GPU-0"]);
  });
});

describe("a surplus ack right after a publish", () => {
  test("ends that connection, and the publisher reconnects at once rather than at its next ping", async () => {
    const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
    const fake = scriptedConsole((line, conn, push) => {
      const [verb, path, ...rest] = line.split(" ");
      const ack = verb === "ECHO" ? `OK ECHO path=${path} bytes=${rest.join(" ").length}` : `OK ${verb}`;
      push(ack);
      if (conn === 0 && line.endsWith(" end")) push(ack); // the end's ack, twice
    });
    const { log, lines } = memoryLogger();
    const publisher = new Publisher({
      connect: fake.connect,
      target: { host: "h", port: 1, token: "t", ticket: "" },
      snapshot: () => Promise.resolve(snap),
      log,
      intervalMs: 600_000,
      pingIdleMs: 600_000,
      backoff: { baseMs: 10, capMs: 20 },
      random: () => 0.5,
    });
    void publisher.start();
    await until(() => publisher.stats.publishes >= 2, 5000, "the republish on a new connection");
    await publisher.stop();
    expect(fake.connections.length).toBe(2);
    expect(lines.some((l) => l.includes("Unmatched ack from the console (nothing is in flight): OK ECHO path=/gpu/bridge/ctl bytes=3")))
      .toBe(true);
  });
});

describe("a console that sends every ECHO ack twice", () => {
  const runtime = bunRuntime();
  let mock: MockConsole;
  beforeEach(async () => (mock = await startMockConsole(runtime, { token: "t" })));
  afterEach(() => mock.close());

  test("never counts as a publish, even when the VM refuses the snapshot's end; the failure is logged", async () => {
    const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
    const lines = publishLines(snap);
    mock.state.faults.duplicateAcks = ["ECHO"];
    // The VM refuses `end`: nothing lands. Its ERR must not arrive after a "successful" publish.
    mock.state.faults.errOnEcho = { n: lines.length, detail: "reason=policy detail=invalid-payload path=/gpu/bridge/ctl error=bad sha" };
    const { log, lines: logged } = memoryLogger();
    const publisher = new Publisher({
      connect: runtime.connect,
      target: { host: "127.0.0.1", port: mock.port, token: "t", ticket: "" },
      snapshot: () => Promise.resolve(snap),
      log,
      intervalMs: 60_000,
      backoff: { baseMs: 10, capMs: 20 },
      random: () => 0.5,
    });
    void publisher.start();
    await until(() => publisher.stats.failures >= 2, 5000, "two failed attempts");
    await publisher.stop();
    expect(mock.state.publishes).toBeLessThanOrEqual(publisher.stats.failures); // later tries land: the err fault fires once
    expect(publisher.stats.publishes).toBe(0);
    expect(logged.some((l) => l.includes("WARN") && l.includes("Unmatched ack from the console"))).toBe(true);
  });
});
