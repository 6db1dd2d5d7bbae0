/** The VM mirror on disk: bounded, saved at a bounded rate, never truncated, own lines recorded before they go. */
import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VmMirror } from "../../src/vm/mirror.ts";
import { loadMirror, loadMirrorOrSetAside, MirrorStore, saveMirror, sentPath } from "../../src/vm/store.ts";
import { VM_CAPS } from "../../src/contract/limits.ts";
import { DiskWriteError } from "../../src/util/files.ts";
import { FakeClock, memoryLogger, smallTmpfs, tempDir } from "../helpers.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function store(dir: string, clock = new FakeClock()) {
  const path = join(dir, "vm-mirror.json");
  const s = new MirrorStore({ path, clock, log: memoryLogger().log, saveMs: 1000 });
  return { s, path, clock };
}

function dir(): string {
  const d = tempDir("gbh-store-");
  cleanups.push(d.cleanup);
  return d.path;
}

describe("MirrorStore", () => {
  test("ordinary changes are saved at most once per period; flush() saves at once", async () => {
    const { s, path, clock } = store(dir());
    const m = new VmMirror();
    s.attach(m, false);
    for (let i = 0; i < 500; i++) {
      m.readBack("G", "status", Array.from({ length: i % 20 }, (_, k) => `{"n":${k}}`));
      s.changed();
      await clock.run(7); // 500 changes over 3.5 s
    }
    await clock.run(1000);
    expect(s.saves).toBeLessThanOrEqual(5);
    expect(s.saves).toBeGreaterThanOrEqual(3);
    s.flush();
    expect(s.saves).toBeLessThanOrEqual(6);
    expect(loadMirror(path)!.text("G", "status")).toBe(m.text("G", "status"));
  });

  test("an own line sent before the next save is recorded first: a restart takes it for the bridge's, not the VM's", () => {
    const d = dir();
    const { s, path } = store(d);
    const m = new VmMirror();
    s.attach(m, false);
    s.flush();
    const p = m.own("G", "ctl", "RELEASE worker-1 expired");
    s.sending([p]);
    s.sending([p]); // recorded once
    expect(readFileSync(sentPath(path), "utf8").trim().split("\n").length).toBe(1);
    // Crash: the VM holds the line (the append landed), the saved mirror does not.
    const back = loadMirror(path)!;
    expect(back.readBack("G", "ctl", ["RELEASE worker-1 expired"]).fresh).toEqual([]);
    expect(back.lines("G", "ctl")).toEqual([{ text: "RELEASE worker-1 expired", own: true }]);
    // A save holds it: the record is emptied.
    s.flush();
    expect(existsSync(sentPath(path))).toBe(false);
    s.sending([p]);
    expect(existsSync(sentPath(path))).toBe(false);
  });

  test("a torn last record (a crash while writing it) is ignored; a damaged one before it names the file and line", () => {
    const { s, path } = store(dir());
    const m = new VmMirror();
    s.attach(m, false);
    s.flush();
    s.sending([m.own("G", "ctl", "a"), m.own("G", "ctl", "b")]);
    appendFileSync(sentPath(path), '{"seq":9,"gpu":"G","fi');
    expect(loadMirror(path)!.pending().map((p) => p.text)).toEqual(["a", "b"]);
    writeFileSync(sentPath(path), '{"seq":1}\n{"seq":2,"gpu":"G","file":"ctl","text":"x"}\n');
    expect(() => loadMirror(path)).toThrow(/vm-mirror\.sent\.jsonl: line 1: .*gpu/);
  });

  test("a damaged mirror is moved aside with a warning, and start-up goes on without it", () => {
    const d = dir();
    const path = join(d, "vm-mirror.json");
    writeFileSync(path, '{"schema":"gpu-bridge-vm-mirror/v2","files":{"G/ctl":{"lines":[{"text":1}]');
    const { log, lines } = memoryLogger();
    expect(loadMirrorOrSetAside(path, log, 42)).toBeNull();
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.damaged-42`)).toBe(true);
    expect(lines.some((l) => l.includes("WARN") && l.includes(path) && l.includes("moved aside"))).toBe(true);
  });

  test("a full disk leaves the last good mirror whole, never a truncated one", () => {
    const fs = smallTmpfs(64);
    if (fs.path === null) {
      console.warn(`skipped: ${fs.reason}`);
      return;
    }
    cleanups.push(fs.cleanup);
    const path = join(fs.path, "vm-mirror.json");
    const m = new VmMirror();
    m.readBack("G", "status", ['{"first":1}']);
    saveMirror(path, m);
    const good = readFileSync(path, "utf8");
    writeFileSync(join(fs.path, "filler"), new Uint8Array(60 * 1024).fill(1), { flag: "w" });
    for (let i = 0; i < 200; i++) m.own("G", "status", `{"line":${i},"pad":"${"p".repeat(100)}"}`);
    expect(() => saveMirror(path, m)).toThrow(DiskWriteError);
    expect(readFileSync(path, "utf8")).toBe(good);
    expect(loadMirror(path)!.text("G", "status")).toBe('{"first":1}\n');
  });

  test("bytes that are not UTF-8 survive a save and a load", () => {
    const { s, path } = store(dir());
    const m = new VmMirror();
    s.attach(m, false);
    const latin1 = "caf\udce9 \udcff\udcfe"; // the bytes 63 61 66 e9 20 ff fe, as decodeLossless keeps them
    m.readBack("G", "status", [latin1]);
    s.flush();
    expect(loadMirror(path)!.lines("G", "status")[0]!.text).toBe(latin1);
  });
});

describe("a VM that answers every read with tens of KiB of new lines", () => {
  test("the mirror stays within the VM's caps, and so does the file it is saved to", async () => {
    const { s, path, clock } = store(dir());
    const m = new VmMirror();
    s.attach(m, false);
    let bytesWritten = 0;
    for (let round = 0; round < 60; round++) {
      // 40 KiB of lines never seen before, in every file, every time.
      const flood = (file: string) => Array.from({ length: 400 }, (_, i) => `{"${file}":${round},"i":${i},"pad":"${"x".repeat(70)}"}`);
      for (const file of ["ctl", "lease", "status", "job"] as const) m.readBack("GPU-0", file, flood(file));
      s.flush(); // the worst case: a save on every read
      bytesWritten += statSync(path).size;
      await clock.run(10);
    }
    const caps = VM_CAPS.ctl + VM_CAPS.lease + VM_CAPS.status + VM_CAPS.job;
    expect(m.heldBytes()).toBeLessThanOrEqual(3 * caps);
    for (const file of ["ctl", "lease", "status", "job"] as const) expect(m.bytes("GPU-0", file)).toBeLessThanOrEqual(VM_CAPS[file]);
    expect(statSync(path).size).toBeLessThanOrEqual(4 * caps);
    expect(bytesWritten / 60).toBeLessThanOrEqual(4 * caps);
  }, 30_000);

  test("a file read past its cap is taken only up to the cap, and the rest is not handed over", () => {
    const m = new VmMirror();
    const lines = Array.from({ length: 100 }, (_, i) => `RESET ${i} ${"r".repeat(20)}`);
    const r = m.readBack("G", "ctl", lines);
    expect(r.overCap).toBeGreaterThan(50);
    expect(r.fresh.length).toBe(100 - r.overCap);
    expect(r.fresh.reduce((n, l) => n + l.length + 1, 0)).toBeLessThanOrEqual(VM_CAPS.ctl);
    // Read again: nothing new, nothing handed twice.
    expect(m.readBack("G", "ctl", lines).fresh).toEqual([]);
  });
});
