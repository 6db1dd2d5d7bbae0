import { describe, expect, test } from "bun:test";
import { VmMirror } from "../../src/vm/mirror.ts";

describe("VmMirror", () => {
  test("readBack() tells the VM's new lines from the bridge's own, and takes a pending line the VM already holds as the bridge's", () => {
    const m = new VmMirror();
    m.seed("G", "LEASE G\n");
    m.own("G", "ctl", "LEASE w1 mem=1 streams=1 priority=0");
    const [p] = m.pending();
    m.acked(p!);
    m.own("G", "ctl", "RELEASE w1 expired"); // sent, ack lost
    const r = m.readBack("G", "ctl", ["LEASE G", "LEASE w1 mem=1 streams=1 priority=0", "RESET", "RELEASE w1 expired", "RESET"]);
    expect(r).toEqual({ fresh: ["RESET", "RESET"], freshAt: [2, 4], diverged: false, overCap: 0 });
    expect(m.pending()).toEqual([]);
    expect(m.lines("G", "ctl").map((l) => [l.text, l.own])).toEqual([
      ["LEASE G", true],
      ["LEASE w1 mem=1 streams=1 priority=0", true],
      ["RESET", false],
      ["RELEASE w1 expired", true],
      ["RESET", false],
    ]);
    // Read again: nothing is new (each VM line is handed over once).
    expect(m.readBack("G", "ctl", m.lines("G", "ctl").map((l) => l.text)).fresh).toEqual([]);
    // A file the VM does not have changes nothing.
    expect(m.readBack("G", "ctl", null).fresh).toEqual([]);
  });

  test("readBack() of a file that is not an extension of what was known keeps both, counting duplicates", () => {
    const m = new VmMirror();
    m.readBack("G", "status", ["a", "b"]);
    const r = m.readBack("G", "status", ["b", "c", "a", "a"]);
    expect(r).toEqual({ fresh: ["c", "a"], freshAt: [1, 3], diverged: true, overCap: 0 });
  });

  test("compact() drops the oldest lines until the target, never a pinned one, pending lines last", () => {
    const m = new VmMirror();
    m.readBack("G", "lease", ["old-1", "ACTIVE-live", "old-2", "vm-3"]);
    m.own("G", "lease", "new-4");
    const dropped = m.compact("G", "lease", 24, (t) => t === "ACTIVE-live");
    expect(dropped).toBe(2);
    expect(m.text("G", "lease")).toBe("ACTIVE-live\nvm-3\nnew-4\n");
    expect(m.compact("G", "lease", 1000, () => false)).toBe(0);
  });

  test("compact() keeps a pinned line written again (renewals, restated records) once, its last copy", () => {
    const m = new VmMirror();
    m.readBack("G", "lease", ["ACTIVE-live", "x", "ACTIVE-live", "ACTIVE-live"]);
    m.own("G", "lease", "ACTIVE-live");
    expect(m.compact("G", "lease", 12, (t) => t === "ACTIVE-live")).toBe(4);
    expect(m.text("G", "lease")).toBe("ACTIVE-live\n");
  });

  test("a line of the bridge's on its way as an append and compacted away is never taken for the VM's when it lands", () => {
    // The bridge echoes each host-side grant and release into the GPU's ctl log; under lease
    // churn a compaction can drop such a line while its ECHO is in flight. The VM then holds a
    // `RELEASE <worker>` the bridge wrote: taken for the VM's, it would end the worker's next lease.
    const m = new VmMirror();
    m.seed("G", "LEASE G");
    const sent = m.own("G", "ctl", "RELEASE w1 released");
    m.sending(sent);
    const unsent = m.own("G", "ctl", "LEASE w2 mem=1 streams=1 priority=0");
    expect(m.compact("G", "ctl", 8, (t) => t === "LEASE G")).toBe(2);
    m.acked(sent);
    expect(m.pending()).toEqual([]);
    // It landed (acknowledged or not): not fresh, whether the VM wrote after it or not.
    expect(m.readBack("G", "ctl", ["LEASE G", "RELEASE w1 released"]).fresh).toEqual([]);
    expect(m.readBack("G", "ctl", ["LEASE G", "RELEASE w1 released", "RESET"]).fresh).toEqual(["RESET"]);
    // The unsent line is simply gone: if the VM ever holds its text, the VM wrote it.
    expect(m.readBack("G", "ctl", ["LEASE G", "RELEASE w1 released", "RESET", unsent.text]).fresh).toEqual([unsent.text]);
  });

  test("a line of the bridge's carried by a snapshot whose landing went unseen, compacted away meanwhile, is not taken for the VM's", () => {
    const m = new VmMirror();
    m.seed("G", "LEASE G");
    m.own("G", "ctl", "RELEASE w1 released");
    m.freeze(["G"]); // the snapshot goes; the link drops before its `end` is acknowledged
    expect(m.compact("G", "ctl", 8, (t) => t === "LEASE G")).toBe(1);
    expect(m.readBack("G", "ctl", ["LEASE G", "RELEASE w1 released"]).fresh).toEqual([]);
  });

  test("an append of the bridge's that the VM refused, compacted away with every line the VM holds, takes none of them for the VM's", () => {
    // The refused line never lands, so the VM's file is not what the mirror knew; the mirror's
    // kept lines (only the pinned seed) are a prefix of any file. Neither is a compacted
    // snapshot having landed unseen: the VM still holds the bridge's compacted lines.
    const m = new VmMirror();
    m.seed("G", "LEASE G");
    for (const t of ["PRIORITY 1", "PRIORITY 2"]) {
      const p = m.own("G", "ctl", t);
      m.sending(p);
      m.acked(p);
    }
    const refused = m.own("G", "ctl", "PRIORITY 3");
    m.sending(refused); // the VM answers it `ERR ECHO … log full`: it stays pending
    m.own("G", "ctl", "PRIORITY 4");
    expect(m.compact("G", "ctl", 19, (t) => t === "LEASE G")).toBe(3); // the seed and the newest line stay
    expect(m.pending().map((p) => p.text)).toEqual(["PRIORITY 4"]);
    expect(m.readBack("G", "ctl", ["LEASE G", "PRIORITY 1", "PRIORITY 2", "v"])).toEqual({
      fresh: ["v"],
      freshAt: [3],
      diverged: false,
      overCap: 0,
    });
    // The refused line is done with: if the VM ever holds its text later, the VM wrote it.
    expect(m.readBack("G", "ctl", ["LEASE G", "PRIORITY 1", "PRIORITY 2", "v", "PRIORITY 3"]).fresh).toEqual(["PRIORITY 3"]);
  });

  test("compacted lines: of two readings of the VM's file, the one holding more of them is taken", () => {
    // `x` compacted twice over: the VM holding one copy is either, and nothing of it is new.
    const m = new VmMirror();
    m.readBack("G", "ctl", ["x", "y", "x"]);
    m.compact("G", "ctl", 0, () => false);
    expect(m.readBack("G", "ctl", ["x"]).fresh).toEqual([]);
    expect(m.readBack("G", "ctl", ["x", "z"]).fresh).toEqual(["z"]);
  });

  test("lines compacted away but still in the VM (the snapshot has not landed) are not taken for new VM lines", () => {
    const m = new VmMirror();
    m.readBack("G", "ctl", ["RELEASE w1", "RELEASE w2", "x"]);
    m.compact("G", "ctl", 2, () => false);
    expect(m.readBack("G", "ctl", ["RELEASE w1", "RELEASE w2", "x", "RELEASE w3"]).fresh).toEqual(["RELEASE w3"]);
  });

  test("a new VM line equal to a compacted one still in the VM is new; compacted lines survive a save and a load", () => {
    const m = new VmMirror();
    m.readBack("G", "ctl", ["RESET", "a", "b"]);
    m.compact("G", "ctl", 4, () => false);
    const back = VmMirror.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(back.readBack("G", "ctl", ["RESET", "a", "b"]).fresh).toEqual([]); // the compacted snapshot has not landed
    expect(back.readBack("G", "ctl", ["RESET", "a", "b", "RESET"]).fresh).toEqual(["RESET"]);
  });

  test("a restart that finds the compacted snapshot landed (it did not see it land) takes nothing for new", () => {
    const m = new VmMirror();
    m.readBack("G", "ctl", ["RELEASE w1", "RELEASE w2", "x"]);
    m.compact("G", "ctl", 2, () => false);
    const back = VmMirror.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(back.readBack("G", "ctl", ["x", "RESET"])).toEqual({ fresh: ["RESET"], freshAt: [1], diverged: false, overCap: 0 });
    expect(back.readBack("G", "ctl", ["x", "RESET", "RELEASE w1"]).fresh).toEqual(["RELEASE w1"]); // written again: new
  });

  test("landed() commits exactly what the snapshot carried; lines logged meanwhile stay pending", () => {
    const m = new VmMirror();
    m.seed("G", "LEASE G\n");
    m.own("G", "status", "s1");
    const token = m.freeze(["G"]);
    m.own("G", "status", "s2");
    m.landed(token);
    expect(m.lines("G", "status").map((l) => l.text)).toEqual(["s1"]);
    expect(m.pending().map((p) => p.text)).toEqual(["s2"]);
  });

  test("a snapshot fitted to the VM's size limit: the oldest lines it left out are gone once it lands, pending ones too", () => {
    const m = new VmMirror();
    m.readBack("G", "status", ['{"vm":1}', '{"vm":2}']);
    m.own("G", "status", "s1");
    m.own("G", "status", "s2");
    // The fitted snapshot carries only the last two status lines (src/contract/fit.ts cuts the oldest).
    const token = m.freeze(["G"], (_gpu, file) => (file === "status" ? 2 : Infinity));
    m.landed(token);
    expect(m.lines("G", "status").map((l) => l.text)).toEqual(["s1", "s2"]);
    expect(m.pending()).toEqual([]);
    const cutPending = new VmMirror();
    cutPending.own("G", "status", "p1");
    cutPending.own("G", "status", "p2");
    cutPending.landed(cutPending.freeze(["G"], () => 1));
    expect(cutPending.lines("G", "status").map((l) => l.text)).toEqual(["p2"]);
    expect(cutPending.pending()).toEqual([]); // p1 is not appended later, out of order
  });

  test("toJSON()/fromJSON() round-trip who wrote what", () => {
    const m = new VmMirror();
    m.readBack("G", "ctl", ["RELEASE w1"]);
    m.own("G", "status", "x");
    const back = VmMirror.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(back.lines("G", "ctl")).toEqual([{ text: "RELEASE w1", own: false }]);
    expect(back.pending()).toEqual([{ gpuId: "G", file: "status", text: "x", own: true, seq: 0 }]);
  });
});
