/**
 * The VM sync's reads go through the console window together, not one round trip each, and
 * the last read before a snapshot's `end` is queued right ahead of it: the VM answers those
 * reads and applies `end` back to back. A scripted session records the order of requests and
 * answers them only when the test says.
 */
import { describe, expect, test } from "bun:test";
import type { ConsoleSession } from "../../src/console/session.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { VmSync } from "../../src/vm/sync.ts";
import { memoryLogger, settle } from "../helpers.ts";

/** A session whose CATs wait for `answer()`; `sent` is every request in the order made. */
function scripted() {
  const sent: string[] = [];
  const waiting = new Map<string, (lines: string[]) => void>();
  const session = {
    requestLines: (line: string) => {
      sent.push(line);
      return new Promise<string[]>((resolve) => waiting.set(line, resolve));
    },
  } as unknown as ConsoleSession;
  const answer = (line: string, lines: string[] = []) => {
    waiting.get(line)!(lines);
    waiting.delete(line);
  };
  return { sent, session, answer, waiting };
}

function vmSync() {
  const { log, lines } = memoryLogger();
  const vm = new VmSync({ log, readbackMs: 0 });
  vm.prepare(MOCK_GPUS.map((g) => g.id));
  const ns = buildNamespace(MOCK_GPUS, builtinCatalog(), (id) => vm.nodeLogs(id));
  vm.built(ns, makeSnapshot(ns));
  return { vm, lines };
}

const files = MOCK_GPUS.flatMap((g) => ["ctl", "lease", "status", "job"].map((f) => `CAT /gpu/${g.id}/${f}`));

describe("pipelined read-back", () => {
  test("after the one CAT that probes a connection's console, every file's CAT is sent before any is answered", async () => {
    const { vm } = vmSync();
    const s = scripted();
    const done = vm.readBack(s.session, new AbortController().signal);
    await settle();
    expect(s.sent).toEqual([files[0]!]);
    s.answer(files[0]!, ["LEASE GPU-0"]);
    await settle();
    expect(s.sent).toEqual(files);
    for (const f of files.slice(1)) s.answer(f, f.endsWith("ctl") ? [`LEASE ${f.split("/")[2]}`] : []);
    await done;
  });

  test("withEnd queues `end` right behind a CAT of every file, the files the VM wrote most last, and lands after the answers", async () => {
    const { vm } = vmSync();
    const s = scripted();
    const signal = new AbortController().signal;
    // A first read-back: the console reads back, and GPU-0's status is where the VM's clients write.
    const first = vm.readBack(s.session, signal);
    await settle();
    for (const f of files) {
      await settle();
      s.answer(f, f.endsWith("ctl") ? [`LEASE ${f.split("/")[2]}`] : f === "CAT /gpu/GPU-0/status" ? ['{"a":1}'] : []);
    }
    await first;
    s.sent.length = 0;
    let ended = false;
    const landed = vm.withEnd(s.session, () => {
      s.sent.push("end");
      return Promise.resolve().then(() => void (ended = true));
    }, signal);
    expect(s.sent.at(-1)).toBe("end"); // queued at once, behind the CATs
    expect(s.sent.slice(0, -1).sort()).toEqual(files.slice().sort());
    expect(s.sent.at(-2)).toBe("CAT /gpu/GPU-0/status");
    for (const f of [...s.waiting.keys()]) {
      s.answer(f, f.endsWith("ctl") ? [`LEASE ${f.split("/")[2]}`] : f === "CAT /gpu/GPU-0/status" ? ['{"a":1}'] : []);
    }
    await landed;
    expect(ended).toBe(true);
  });

  test("a plain read-back keeps the files' own order, whichever the VM wrote most", async () => {
    const { vm } = vmSync();
    const s = scripted();
    const signal = new AbortController().signal;
    const answer = (f: string) =>
      s.answer(f, f.endsWith("ctl") ? [`LEASE ${f.split("/")[2]}`] : f === "CAT /gpu/GPU-0/status" ? ['{"a":1}'] : []);
    const first = vm.readBack(s.session, signal);
    for (const f of files) {
      await settle();
      answer(f);
    }
    await first;
    s.sent.length = 0;
    const again = vm.readBack(s.session, signal);
    await settle();
    expect(s.sent).toEqual(files);
    for (const f of files) answer(f);
    await again;
  });
});
