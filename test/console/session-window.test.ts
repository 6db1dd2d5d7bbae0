/**
 * The console session's window as the console and the caller see it: which lines go on the wire
 * and when, what an abandoned, refused or malformed line does to the others, how strictly an ack
 * must answer its line, and where a listing's reply bound lies. A scripted peer over an
 * in-memory connection, on a fake clock.
 */
import { describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { ConsoleSession, MAX_REPLY_BYTES } from "../../src/console/session.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { memoryPair } from "../../src/runtime/memory.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { FakeClock, settle } from "../helpers.ts";

function peer(conn: Conn) {
  const received: string[] = [];
  const writes: number[] = [];
  void (async () => {
    const d = new FrameDecoder();
    for await (const chunk of conn.readable) {
      const lines = d.push(chunk);
      writes.push(lines.length);
      received.push(...lines);
    }
  })();
  return { received, writes, reply: (...lines: string[]) => conn.write(new Uint8Array(lines.flatMap((l) => [...encodeFrame(l)]))) };
}

function setup(window = 3, ackTimeoutMs = 1000) {
  const clock = new FakeClock();
  const [client, server] = memoryPair();
  const other: string[] = [];
  const closes: ConsoleError[] = [];
  const session = new ConsoleSession(client, {
    window,
    ackTimeoutMs,
    clock,
    onOther: (l) => other.push(l),
    onClose: (e) => closes.push(e),
  });
  return { clock, session, p: peer(server), other, closes };
}

const outcome = (p: Promise<unknown>) => p.then((v) => v, (e: unknown) => e as ConsoleError);

describe("the window on the wire", () => {
  test("the session reports the window it was given", () => {
    expect(setup(5).session.window).toBe(5);
    expect(setup(1).session.window).toBe(1);
  });

  test("a listing takes one slot of the window: lines behind it go out at once, answered after its END", async () => {
    const { session, p } = setup(3);
    const listing = session.requestLines("CAT /gpu/x", "CAT");
    const echoes = [1, 2, 3].map((i) => session.request(`ECHO /gpu/y ${i}`, "ECHO"));
    await settle();
    expect(p.received).toEqual(["CAT /gpu/x", "ECHO /gpu/y 1", "ECHO /gpu/y 2"]);
    // Until END, even a line that reads like the next ack is the listing's content.
    await p.reply("OK CAT path=/gpu/x data=a", "a", "OK ECHO path=/gpu/y bytes=1", "END");
    expect(await listing).toEqual(["a", "OK ECHO path=/gpu/y bytes=1"]);
    await settle();
    expect(p.received).toEqual(["CAT /gpu/x", "ECHO /gpu/y 1", "ECHO /gpu/y 2", "ECHO /gpu/y 3"]);
    await p.reply(...[1, 2, 3].map(() => "OK ECHO path=/gpu/y bytes=1"));
    for (const e of echoes) expect((await e as { ok: boolean }).ok).toBe(true);
  });

  test("a batch sharing one signal is sent whole when every line is accepted", async () => {
    const { session, p } = setup(1);
    const batch = new AbortController();
    const lines = [1, 2, 3].map((i) => session.request(`ECHO /gpu/y ${i}`, "ECHO", batch.signal));
    for (let i = 0; i < 3; i++) {
      await settle();
      await p.reply("OK ECHO path=/gpu/y bytes=1");
    }
    for (const l of lines) expect((await outcome(l) as { ok: boolean }).ok).toBe(true);
    expect(p.received).toEqual(["ECHO /gpu/y 1", "ECHO /gpu/y 2", "ECHO /gpu/y 3"]);
  });

  test("a refusal withdraws the batch's unsent lines, saying so", async () => {
    const { session, p } = setup(1);
    const batch = new AbortController();
    const first = outcome(session.request("ECHO /gpu/y 1", "ECHO", batch.signal));
    const second = outcome(session.request("ECHO /gpu/y 2", "ECHO", batch.signal));
    await settle();
    await p.reply("ERR ECHO reason=full");
    expect((await first as ConsoleError).kind).toBe("rejected");
    const w = await second as ConsoleError;
    expect([w.kind, w.message]).toEqual(["closed", "Withdrawn: an earlier line in the window was refused"]);
    expect(p.received).toEqual(["ECHO /gpu/y 1"]);
  });

  test("a refused line without a signal withdraws nothing else", async () => {
    const { session, p } = setup(1);
    const refused = outcome(session.request("ECHO /gpu/y 1", "ECHO"));
    const next = session.request("ECHO /gpu/y 2", "ECHO");
    await settle();
    await p.reply("ERR ECHO reason=full");
    expect((await refused as ConsoleError).kind).toBe("rejected");
    await settle();
    await p.reply("OK ECHO path=/gpu/y bytes=1");
    expect((await next).ok).toBe(true);
  });

  test("a refusal with no detail still says what was refused", async () => {
    const { session, p } = setup();
    const r = outcome(session.request("PING", "PING"));
    await settle();
    await p.reply("ERR PING");
    expect((await r as ConsoleError).message).toBe("Console refused PING: (no detail)");
  });
});

describe("abandoned lines", () => {
  test("a queued line whose caller gives up is never sent; the lines behind it still are", async () => {
    const { session, p } = setup(1);
    const first = session.request("PING", "PING");
    const stop = new AbortController();
    const abandoned = outcome(session.request("ECHO /gpu/y a", "ECHO", stop.signal));
    const third = session.request("ECHO /gpu/y c", "ECHO");
    await settle();
    stop.abort();
    const a = await abandoned as ConsoleError;
    expect([a.kind, a.message]).toEqual(["closed", "Abandoned ECHO: shutting down"]);
    await p.reply("OK PING reply=pong");
    await first;
    await settle();
    await p.reply("OK ECHO path=/gpu/y bytes=1");
    await third;
    expect(p.received).toEqual(["PING", "ECHO /gpu/y c"]);
  });

  test("giving up on a line already sent keeps the line queued behind it", async () => {
    const { session, p } = setup(1);
    const stop = new AbortController();
    const sent = outcome(session.request("PING", "PING", stop.signal));
    const next = session.request("ECHO /gpu/y n", "ECHO");
    await settle();
    stop.abort();
    expect(await sent).toBeInstanceOf(ConsoleError);
    await p.reply("OK PING reply=pong"); // its ack still frees the slot
    await settle();
    await p.reply("OK ECHO path=/gpu/y bytes=1");
    expect((await next).ok).toBe(true);
    expect(p.received).toEqual(["PING", "ECHO /gpu/y n"]);
  });

  test("a signal aborted before the request sends nothing", async () => {
    const { session, p } = setup();
    const stop = new AbortController();
    stop.abort();
    expect(await outcome(session.request("PING", "PING", stop.signal))).toBeInstanceOf(ConsoleError);
    void session.request("ECHO /gpu/y z", "ECHO").catch(() => {});
    await settle();
    expect(p.received).toEqual(["ECHO /gpu/y z"]);
  });

  test("a line that cannot be framed is refused alone; the session goes on", async () => {
    const { session, p } = setup();
    const bad = await outcome(session.request(`ECHO /gpu/y ${"x".repeat(70_000)}`, "ECHO")) as ConsoleError;
    expect(bad.kind).toBe("protocol");
    expect(bad.message).toContain("Cannot frame line");
    expect(bad.cause).toBeDefined();
    const good = session.request("PING", "PING");
    await settle();
    await p.reply("OK PING reply=pong");
    expect((await good).ok).toBe(true);
    expect(session.closed).toBe(false);
  });

  test("close() fails what is in flight as closed by the bridge, once", async () => {
    const { session, closes } = setup();
    const r = outcome(session.request("PING", "PING"));
    await settle();
    session.close();
    const e = await r as ConsoleError;
    expect([e.kind, e.message]).toEqual(["closed", "Connection closed by the bridge"]);
    expect(closes.length).toBe(1);
    expect(await outcome(session.request("PING", "PING"))).toBe(e);
  });
});

describe("how strictly an ack answers its line", () => {
  test("an ECHO without a payload is answered by bytes=0 for its path", async () => {
    const { session, p } = setup();
    const r = session.request("ECHO /gpu/bridge/ctl", "ECHO");
    await settle();
    await p.reply("OK ECHO path=/gpu/bridge/ctl bytes=0");
    expect((await r).ok).toBe(true);
  });

  for (const bytes of ["+3", "3.0", "0x3", "03x"]) {
    test(`bytes=${bytes} does not answer a 3-byte ECHO`, async () => {
      const { session, p, closes } = setup();
      const r = outcome(session.request("ECHO /gpu/y abc", "ECHO"));
      await settle();
      await p.reply(`OK ECHO path=/gpu/y bytes=${bytes}`);
      expect((await r as ConsoleError).kind).toBe("protocol");
      expect(closes.map((c) => c.kind)).toEqual(["protocol"]);
    });
  }

  test("an LS answered for another path is a protocol error; a CAT's path is read without its trailing blanks", async () => {
    const a = setup();
    const ls = outcome(a.session.requestLines("LS /gpu", "LS"));
    await settle();
    await a.p.reply("OK LS path=/queen entries=0", "END");
    expect((await ls as ConsoleError).kind).toBe("protocol");
    const b = setup();
    const cat = b.session.requestLines("CAT /gpu/x  ", "CAT");
    await settle();
    await b.p.reply("OK CAT path=/gpu/x data=", "END");
    expect(await cat).toEqual([]);
  });

  test("an unmatched ack of exactly 160 characters is shown whole", async () => {
    const { session, p, closes } = setup();
    const r = outcome(session.request("PING", "PING"));
    await settle();
    const line = `OK ECHO path=/gpu/y bytes=1 note=`.padEnd(160, "n");
    await p.reply(line);
    await r;
    expect(closes[0]!.message.endsWith(`: ${line}`)).toBe(true);
  });

  test("an unmatched ack's text is shown cut at 160 characters", async () => {
    const { session, p, closes } = setup();
    const r = outcome(session.request("PING", "PING"));
    await settle();
    const long = `OK ECHO path=/gpu/y bytes=1 note=${"n".repeat(300)}`;
    await p.reply(long);
    await r;
    expect(closes[0]!.message).toContain(`${long.slice(0, 160)}…`);
    expect(closes[0]!.message).not.toContain(long.slice(0, 161));
  });
});

describe("listings", () => {
  test("listings in flight together each get their own content, in the order sent", async () => {
    const { session, p } = setup(4);
    const first = session.requestLines("CAT /gpu/x", "CAT");
    const second = session.requestLines("LS /gpu", "LS");
    await settle();
    expect(p.received).toEqual(["CAT /gpu/x", "LS /gpu"]);
    await p.reply("OK CAT path=/gpu/x data=a", "a", "END", "OK LS path=/gpu entries=2", "GPU-0", "bridge", "END");
    expect(await first).toEqual(["a"]);
    expect(await second).toEqual(["GPU-0", "bridge"]);
  });

  test("noise before the ack is not content; a later line equal to the ack is", async () => {
    const { session, p, other } = setup();
    const listing = session.requestLines("CAT /gpu/x", "CAT");
    await settle();
    const ack = "OK CAT path=/gpu/x data=b";
    await p.reply("PONG", ack, "a", ack, "END");
    expect(await listing).toEqual(["a", ack]);
    expect(other).toEqual(["PONG"]);
  });

  test("LS checks the entry count it announces, and only a plain number is one", async () => {
    const ok = setup();
    const odd = ok.session.requestLines("LS /gpu", "LS");
    await settle();
    await ok.p.reply("OK LS path=/gpu entries=3x", "a", "END");
    expect(await odd).toEqual(["a"]);
    const lead = setup();
    const led = lead.session.requestLines("LS /gpu", "LS");
    await settle();
    await lead.p.reply("OK LS path=/gpu entries=x3", "a", "END");
    expect(await led).toEqual(["a"]);
    const bad = setup();
    const twelve = outcome(bad.session.requestLines("LS /gpu", "LS"));
    await settle();
    await bad.p.reply("OK LS path=/gpu entries=12", "a", "b", "END");
    expect((await twelve as ConsoleError).kind).toBe("protocol");
    const cat = setup();
    const listing = cat.session.requestLines("CAT /gpu/x", "CAT");
    await settle();
    await cat.p.reply("OK CAT path=/gpu/x entries=5", "a", "END");
    expect(await listing).toEqual(["a"]);
  });

  test(`a reply of exactly ${MAX_REPLY_BYTES} bytes is read; one byte more drops the connection`, async () => {
    // Each content line counts its bytes plus one for its end.
    const lines = (total: number) => {
      const out: string[] = [];
      for (let left = total; left > 0;) {
        const n = Math.min(1000, left) - 1;
        out.push("x".repeat(n));
        left -= n + 1;
      }
      return out;
    };
    const a = setup();
    const exact = a.session.requestLines("CAT /gpu/x", "CAT");
    await settle();
    await a.p.reply("OK CAT path=/gpu/x data=x", ...lines(MAX_REPLY_BYTES), "END");
    expect((await exact).length).toBe(lines(MAX_REPLY_BYTES).length);
    const b = setup();
    const over = outcome(b.session.requestLines("CAT /gpu/x", "CAT"));
    await settle();
    await b.p.reply("OK CAT path=/gpu/x data=x", ...lines(MAX_REPLY_BYTES + 1), "END");
    expect((await over as ConsoleError).message).toContain(`passed ${MAX_REPLY_BYTES} bytes without END`);
  });

  test("a listing with no END times out with a message naming the verb and the wait", async () => {
    const { session, p, clock } = setup(3, 250);
    const r = outcome(session.requestLines("CAT /gpu/x", "CAT"));
    await settle();
    await p.reply("OK CAT path=/gpu/x data=a", "a");
    await clock.run(250);
    const e = await r as ConsoleError;
    expect([e.kind, e.message]).toEqual(["timeout", "No END after CAT within 250 ms"]);
  });
});
