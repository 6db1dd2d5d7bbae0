/**
 * Appends against the VM's cap while earlier appends are still unacknowledged: the bridge counts
 * the bytes in flight, so it compacts the file by a snapshot instead of sending a line the VM
 * must refuse. The VM here is the mock's VmTree (the real VM's cap rule), answering only when
 * the test releases the acks, so several batches are in flight at once.
 */
import { describe, expect, test } from "bun:test";
import { QUEEN_CTL, VmTree } from "../../mock/console/vm.ts";
import { ConsoleSession } from "../../src/console/session.ts";
import { VM_CAPS } from "../../src/contract/limits.ts";
import { encodeFrame, FrameDecoder } from "../../src/contract/frame.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import type { Conn } from "../../src/runtime/transport.ts";
import { AsyncQueue } from "../../src/util/async-queue.ts";
import { byteLength } from "../../src/util/bytes.ts";
import { VmSync } from "../../src/vm/sync.ts";
import { FakeClock, memoryLogger, settle } from "../helpers.ts";

/** A VM whose acks wait for `release()`; every line is applied to its tree as it arrives. */
function slowVm() {
  const tree = new VmTree();
  for (const g of MOCK_GPUS) for (const f of ["ctl", "lease", "status"]) tree.files.set(`/gpu/${g.id}/${f}`, "");
  const incoming = new AsyncQueue<Uint8Array>();
  const decoder = new FrameDecoder();
  const held: string[] = [];
  const conn: Conn = {
    readable: incoming,
    write(bytes) {
      for (const line of decoder.push(bytes)) {
        const m = /^ECHO (\S+) (.*)$/.exec(line);
        if (m === null || m[1] === QUEEN_CTL) throw new Error(`unexpected line ${line}`);
        held.push(tree.echo(m[1]!, m[2]!, "worker-gpu"));
      }
      return Promise.resolve();
    },
    close: () => incoming.end(),
  };
  const release = () => {
    for (const ack of held.splice(0)) incoming.push(encodeFrame(ack));
  };
  return { tree, conn, release, held };
}

describe("appends while earlier ones are in flight", () => {
  test("the projection counts unacknowledged bytes: the file is compacted by a snapshot, the VM never refuses a line", async () => {
    const vm = slowVm();
    const clock = new FakeClock();
    const session = new ConsoleSession(vm.conn, { window: 7, ackTimeoutMs: 60_000, clock });
    let snapshotsAsked = 0;
    const sync = new VmSync({ log: memoryLogger().log, readbackMs: 0, clock, requestPublish: () => snapshotsAsked++ });
    const ns = buildNamespace(MOCK_GPUS, builtinCatalog());
    sync.built(ns, makeSnapshot(ns));
    const line = (i: number) => JSON.stringify({ job: `job-${String(i).padStart(3, "0")}`, state: "OK", detail: "d".repeat(50) });
    const perLine = byteLength(line(0)) + 1;
    const fits = Math.floor(VM_CAPS.status / perLine);
    const signal = new AbortController().signal;
    const sendAll = async () => {
      for (let steps = 0; sync.hasWork(); steps++) {
        expect(steps).toBeLessThan(100);
        await sync.step(session, signal);
      }
    };
    // Nearly a full file goes out in batches, none acknowledged yet.
    for (let i = 0; i < fits - 2; i++) sync.mirror.own("GPU-0", "status", line(i));
    await sendAll();
    expect(snapshotsAsked).toBe(0);
    // More lines are logged meanwhile: the mirror makes room by dropping its oldest (in flight)
    // lines, but the VM has them; only the bytes in flight say the file is full.
    for (let i = fits - 2; i < fits + 8; i++) sync.mirror.own("GPU-0", "status", line(i));
    await sendAll();
    // Now the VM answers everything that reached it.
    for (let i = 0; i < 500 && (vm.held.length > 0 || session.inFlight > 0); i++) {
      vm.release();
      await settle();
    }
    expect(session.inFlight).toBe(0);
    expect(sync.stats.refusedAppends).toBe(0);
    expect(snapshotsAsked).toBe(1); // asked before any refusal: the projection saw the file full
    expect(sync.stats.appends).toBe(fits); // the two that still fitted went as appends
    const status = vm.tree.files.get("/gpu/GPU-0/status")!;
    expect(status.split("\n").length - 1).toBe(fits);
    expect(status).toEndWith(line(fits - 1) + "\n");
    session.close();
  });

  test("lines the VM's clients wrote that the bridge has not read yet: the refusal is counted and compacts the file", async () => {
    const vm = slowVm();
    const clock = new FakeClock();
    const session = new ConsoleSession(vm.conn, { window: 7, ackTimeoutMs: 60_000, clock });
    let snapshotsAsked = 0;
    const sync = new VmSync({ log: memoryLogger().log, readbackMs: 0, clock, requestPublish: () => snapshotsAsked++ });
    const ns = buildNamespace(MOCK_GPUS, builtinCatalog());
    sync.built(ns, makeSnapshot(ns));
    const crumb = JSON.stringify({ note: "n".repeat(100) }) + "\n";
    const crumbs = crumb.repeat(Math.floor(VM_CAPS.status / byteLength(crumb)));
    const rest = VM_CAPS.status - byteLength(crumbs) - 10; // leaves the file 10 bytes of room
    vm.tree.files.set("/gpu/GPU-0/status", crumbs + JSON.stringify({ p: "x".repeat(rest - 9) }) + "\n");
    const mine = sync.mirror.own("GPU-0", "status", JSON.stringify({ job: "j1", state: "OK", detail: "done and dusted" }));
    await sync.step(session, new AbortController().signal);
    expect(snapshotsAsked).toBe(0);
    for (let i = 0; i < 50 && (vm.held.length > 0 || session.inFlight > 0); i++) {
      vm.release();
      await settle();
    }
    expect(sync.stats.refusedAppends).toBe(1);
    expect(sync.stats.appends).toBe(0);
    expect(snapshotsAsked).toBe(1);
    expect(sync.mirror.pending()).toEqual([mine]); // still waiting: the compacting snapshot carries it
    expect(sync.hasWork()).toBe(false); // no more appends to that file until the snapshot lands
    session.close();
  });
});
