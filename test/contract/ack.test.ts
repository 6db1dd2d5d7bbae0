import { describe, expect, test } from "bun:test";
import { ackDelayMs, parseAck, parseFields } from "../../src/contract/ack.ts";

describe("parseAck()", () => {
  test("reads OK and ERR acks with verb, detail and fields", () => {
    expect(parseAck("OK AUTH")).toEqual({ ok: true, verb: "AUTH", detail: "", fields: {} });
    expect(parseAck("OK ECHO path=/gpu/bridge/ctl bytes=128")).toMatchObject({
      ok: true,
      verb: "ECHO",
      fields: { path: "/gpu/bridge/ctl", bytes: "128" },
    });
    expect(parseAck("ERR ATTACH reason=quota detail=throttled delay_ms=250")).toMatchObject({
      ok: false,
      verb: "ATTACH",
      detail: "reason=quota detail=throttled delay_ms=250",
      fields: { reason: "quota", detail: "throttled", delay_ms: "250" },
    });
  });

  test("a detail holding line or paragraph separators (a VM line in a CAT summary) is still an ack", () => {
    for (const sep of ["\u2028", "\u2029", "\u0085", "\r", "\n"]) {
      expect(parseAck(`OK CAT path=/gpu/GPU-0/ctl data=a${sep}b`)).toMatchObject({
        ok: true,
        verb: "CAT",
        fields: { path: "/gpu/GPU-0/ctl" },
      });
    }
  });

  test.each(["PONG", "END", "[net-console] queue depth=1", "log: OK AUTH", "OK", "ok AUTH", "OKAUTH", "ERR", ""])(
    "skips %j, which is not an ack",
    (line) => expect(parseAck(line)).toBeNull(),
  );
});

describe("parseFields()", () => {
  test("lets a value run to the next key, so values may hold spaces", () => {
    expect(parseFields("reason=policy detail=invalid-payload path=/gpu/bridge/ctl error=invalid payload")).toEqual({
      reason: "policy",
      detail: "invalid-payload",
      path: "/gpu/bridge/ctl",
      error: "invalid payload",
    });
  });
  test("keeps the first of repeated keys", () => expect(parseFields("a=1 a=2")).toEqual({ a: "1" }));
});

describe("ackDelayMs()", () => {
  test("reads delay_ms from a refusal and ignores junk", () => {
    expect(ackDelayMs(parseAck("ERR ECHO reason=quota delay_ms=1500")!)).toBe(1500);
    expect(ackDelayMs(parseAck("ERR ECHO reason=quota delay_ms=soon")!)).toBeUndefined();
    expect(ackDelayMs(parseAck("ERR ECHO reason=quota")!)).toBeUndefined();
  });
});
