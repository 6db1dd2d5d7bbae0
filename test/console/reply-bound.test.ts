/**
 * The bound on a multi-line console reply (CAT, LS) at its exact byte: 64 KiB of lines (each
 * counted with its newline) before `END` is a reply; one line more is a broken console, and the
 * connection is dropped. The figure is written out here, not imported: raising the bound is a
 * change this test must see.
 */
import { describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { ConsoleSession } from "../../src/console/session.ts";
import { scriptedConsole } from "./scripted-conn.ts";

const BOUND = 64 * 1024;
/** 64 lines of 1023 characters: with their newlines, exactly BOUND bytes. */
const full = Array.from({ length: 64 }, (_, i) => String(i).padStart(4, "0") + "x".repeat(1019));

function console(body: readonly string[]) {
  return scriptedConsole((line, _conn, push) => {
    if (!line.startsWith("CAT ")) return;
    push("OK CAT path=/queen/x data=x");
    for (const l of body) push(l);
    push("END");
  });
}

describe("the console reply bound", () => {
  test("a reply of exactly 64 KiB before END is read whole", async () => {
    expect(full.reduce((n, l) => n + l.length + 1, 0)).toBe(BOUND);
    const session = new ConsoleSession(await console(full).connect("h", 1), { ackTimeoutMs: 30_000 });
    expect(await session.requestLines("CAT /queen/x", "CAT")).toEqual(full);
    expect(session.closed).toBe(false);
    session.close();
  });

  test("one 2-byte line more is refused as a protocol error, and the connection is dropped", async () => {
    const fake = console([...full, "y"]);
    const session = new ConsoleSession(await fake.connect("h", 1), { ackTimeoutMs: 30_000 });
    const err = await session.requestLines("CAT /queen/x", "CAT").catch((e) => e);
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("protocol");
    expect(err.message).toBe(`Console reply passed ${BOUND} bytes without END; dropping the connection`);
    expect(session.closed).toBe(true);
    expect(fake.closed).toBe(1);
  });
});
