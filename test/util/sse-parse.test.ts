import { expect, test } from "bun:test";
import { SseParser } from "../../src/util/sse-parse.ts";

const STREAM = ": gpu-bridge-host events; newest change 4\n\n" +
  'id: 5\nevent: model.activated\ndata: {"id":5}\n\n' +
  ": keep-alive\r\n\r\n" +
  'event: stream.gap\r\ndata: {"from":1,\r\ndata: "to":3}\r\n\r\n' +
  'id: 6\revent: model.activated\rdata:{"id":6}\r\r' +
  "event: empty\n\n" +
  "id: 7\ndata: tail never ended";

const expected = [
  { event: "model.activated", data: '{"id":5}', lastEventId: "5" },
  { event: "stream.gap", data: '{"from":1,\n"to":3}', lastEventId: "5" },
  { event: "model.activated", data: '{"id":6}', lastEventId: "6" },
];

test("SseParser: whole, then one byte at a time, the same events (CRLF, CR and LF; comments; no-data events dropped)", () => {
  expect(new SseParser().push(STREAM)).toEqual(expected);
  const bytes = new TextEncoder().encode(STREAM);
  const parser = new SseParser();
  const got = [];
  for (const b of bytes) got.push(...parser.push(new Uint8Array([b])));
  expect(got).toEqual(expected);
  // The unterminated tail set the id but dispatched nothing.
  expect(parser.lastEventId).toBe("7");
});

test("SseParser: a CR that ends a chunk waits for the next one before the line ends", () => {
  const p = new SseParser("4");
  expect(p.push("event: a\r\ndata: x\r\n\r")).toEqual([]);
  expect(p.push("\n")).toEqual([{ event: "a", data: "x", lastEventId: "4" }]);
  // A character split across chunks is decoded whole.
  const euro = new TextEncoder().encode("data: €\n\n");
  expect([...p.push(euro.subarray(0, 7)), ...p.push(euro.subarray(7))]).toEqual([{ event: "message", data: "€", lastEventId: "4" }]);
});
