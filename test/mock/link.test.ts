/** The mock console's long wire (mock/console/link.ts): order kept under jitter, loss kills both ends. */
import { describe, expect, test } from "bun:test";
import { linkConn, type LinkSettings } from "../../mock/console/link.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { AsyncQueue } from "../../src/util/async-queue.ts";
import { until } from "../helpers.ts";

function socket() {
  const fromClient = new AsyncQueue<Uint8Array>();
  const toClient: number[] = [];
  let closed = false;
  const conn: Conn = {
    readable: fromClient,
    write: (b) => (toClient.push(...b), Promise.resolve()),
    close: () => void (closed = true),
  };
  return { conn, fromClient, toClient, isClosed: () => closed };
}

async function collect(conn: Conn, n: number): Promise<number[]> {
  const out: number[] = [];
  for await (const chunk of conn.readable) {
    out.push(...chunk);
    if (out.length >= n) break;
  }
  return out;
}

describe("linkConn()", () => {
  test("keeps the order of chunks in both directions under heavy jitter", async () => {
    const s = socket();
    let r = 1;
    const link = linkConn(s.conn, () => ({ latencyMs: 2, jitterMs: 15 }), () => ((r = (r * 48271) % 2147483647) / 2147483647));
    const got = collect(link, 40);
    for (let i = 0; i < 40; i++) {
      s.fromClient.push(new Uint8Array([i]));
      void link.write(new Uint8Array([100 + i]));
    }
    expect(await got).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await until(() => s.toClient.length === 40, 2000, "every write to arrive");
    expect(s.toClient).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
  });

  test("delivers nothing before the latency has passed", async () => {
    const s = socket();
    const link = linkConn(s.conn, () => ({ latencyMs: 40 }));
    void link.write(new Uint8Array([1]));
    await Bun.sleep(5);
    expect(s.toClient).toEqual([]);
    await until(() => s.toClient.length === 1, 2000, "the write to arrive");
  });

  test("a lost chunk is the end of the link: both ends see it close, and nothing after it arrives", async () => {
    const s = socket();
    const settings: LinkSettings = { lossPerChunk: 0 };
    const link = linkConn(s.conn, () => settings, () => 0.5);
    const got = collect(link, 99);
    s.fromClient.push(new Uint8Array([1]));
    await Bun.sleep(5);
    settings.lossPerChunk = 0.9;
    s.fromClient.push(new Uint8Array([2]));
    expect(await got).toEqual([1]);
    expect(s.isClosed()).toBe(true);
    await expect(link.write(new Uint8Array([3]))).rejects.toThrow("the link is down");
  });
});
