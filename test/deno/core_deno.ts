/**
 * The pure core on Deno: the same byte-for-byte promises the Bun suite checks, run by
 * `deno test` so a Deno-only regression cannot hide.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { MOCK_GPUS } from "../../mock/inventory.ts";
import { parseAck } from "../../src/console/ack.ts";
import { encodeFrame, FrameDecoder, FrameError } from "../../src/console/frame.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { renderList } from "../../src/namespace/list.ts";
import { buildNamespace } from "../../src/namespace/mod.ts";
import { makeSnapshot, publishLines } from "../../src/snapshot/encode.ts";
import { CtlReceiver } from "../../src/snapshot/receiver.ts";
import { startMockConsole } from "../../mock/console/server.ts";
import { publishOnce } from "../../src/console/publish.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";

declare const Deno: { test(name: string, fn: () => void | Promise<void>): void };

const ns = buildNamespace(MOCK_GPUS, builtinCatalog());

Deno.test("renderList() reproduces the fixture on Deno", () => {
  const fixture = readFileSync(new URL("../fixtures/mock-list.json", import.meta.url), "utf8");
  strictEqual(renderList(ns), fixture);
});

Deno.test("makeSnapshot() gives the contract's size and hash on Deno", () => {
  const snap = makeSnapshot(ns);
  strictEqual(snap.bytes.length, 1477);
  strictEqual(snap.sha256, "704821d10bbd99487459a9df07ce769a6bb2c781c7661a31f0214021ba272e1b");
});

Deno.test("CtlReceiver lands the publish lines on Deno", () => {
  const rx = new CtlReceiver();
  let tree;
  for (const line of publishLines(makeSnapshot(ns))) {
    const r = rx.accept(line);
    strictEqual(r.ok, true);
    if (r.ok && r.tree) tree = r.tree;
  }
  deepStrictEqual(tree, ns);
});

Deno.test("FrameDecoder splits byte by byte and rejects bad lengths on Deno", () => {
  const bytes = new Uint8Array([...encodeFrame("OK AUTH"), ...encodeFrame("PONG")]);
  const dec = new FrameDecoder();
  const lines: string[] = [];
  for (const b of bytes) lines.push(...dec.push(new Uint8Array([b])));
  deepStrictEqual(lines, ["OK AUTH", "PONG"]);
  throws(() => new FrameDecoder().push(new Uint8Array([3, 0, 0, 0])), FrameError);
  deepStrictEqual(parseAck("ERR ATTACH reason=quota detail=throttled delay_ms=250")?.fields, {
    reason: "quota",
    detail: "throttled",
    delay_ms: "250",
  });
});

Deno.test("publishOnce() lands the snapshot through Deno's TCP adapter, both ends on Deno", async () => {
  const runtime = denoRuntime();
  const mock = await startMockConsole(runtime, { token: "t" });
  try {
    const snap = makeSnapshot(ns);
    const target = { host: "127.0.0.1", port: mock.port, token: "t", ticket: "" };
    const report = await publishOnce(runtime.connect, target, snap, publishLines(snap));
    strictEqual(report.frames, 20);
    deepStrictEqual(mock.state.tree, ns);
  } finally {
    await mock.close();
  }
});
