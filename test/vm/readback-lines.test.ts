/**
 * Reading the VM's files back, as the host and an operator see it: which lines are handed over
 * (and saved first), which are history, what a missing file or a console that cannot read does,
 * the warnings for a VM past its caps or holding something else, and what the reads cost on the
 * link. VmSync against a scripted console session, on a fake clock.
 */
import { describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { lacksVerb, ReadbackProbe } from "../../src/console/readback.ts";
import type { ConsoleSession } from "../../src/console/session.ts";
import { parseAck } from "../../src/contract/ack.ts";
import type { Namespace } from "../../src/contract/namespace.ts";
import type { Snapshot } from "../../src/contract/snapshot.ts";
import { VmMirror } from "../../src/vm/mirror.ts";
import { VmSync, type VmSyncOptions } from "../../src/vm/sync.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const GPU = "GPU-0";
type Files = Record<string, string[] | "unsupported">;

/** A console session whose CAT answers from `files` (a path not there: not-found). */
function console_(files: Files) {
  const asked: string[] = [];
  const session = {
    requestLines: (line: string) => {
      asked.push(line);
      const path = line.slice(4);
      const f = files[path];
      if (f === undefined || f === "unsupported") {
        const reason = f === undefined ? "not-found" : "unsupported";
        const ack = parseAck(`ERR CAT reason=${reason}`)!;
        return Promise.reject(new ConsoleError("rejected", `Console refused CAT: reason=${reason}`, { ack }));
      }
      return Promise.resolve([...f]);
    },
  };
  return { session: session as unknown as ConsoleSession, asked };
}

function setup(extra: Partial<VmSyncOptions> & { fresh?: boolean } = {}) {
  const clock = new FakeClock();
  const { log, lines: logged } = memoryLogger();
  const events: string[] = [];
  const sync = new VmSync({
    log,
    clock,
    readbackMs: 1000,
    minSnapshotMs: 0,
    ...(extra.fresh ? {} : { mirror: new VmMirror() }),
    persist: { changed: () => events.push("changed"), flush: () => events.push("flush"), sending: () => {} },
    onVmLines: (gpu, file, lines) => events.push(`lines ${gpu}/${file}: ${lines.join("|")}`),
    onVmHistory: (gpu, file, lines) => events.push(`history ${gpu}/${file}: ${lines.join("|")}`),
    requestPublish: () => events.push("publish"),
    ...extra,
  });
  const ns: Namespace = { nodes: [{ id: GPU, info: "", ctl: "", lease: "", status: "" }], active: "", models: [], telemetrySchema: "" };
  sync.built(ns, { sha256: "s" } as Snapshot);
  return { sync, clock, events, logged };
}

const files = (f: Partial<Record<"ctl" | "lease" | "status" | "job", string[] | "unsupported">>): Files =>
  Object.fromEntries(Object.entries(f).map(([k, v]) => [`/gpu/${GPU}/${k}`, v!]));
const signal = new AbortController().signal;

describe("the VM's own lines", () => {
  test("are handed over per file; a control or lease line is saved first, a breadcrumb only marked for saving", async () => {
    const { sync, events } = setup();
    const vm = console_(files({ ctl: ["PRIORITY 3"], lease: [], status: ['{"b":1}'], job: ["j1"] }));
    await sync.readBack(vm.session, signal);
    expect(events).toEqual([
      "flush",
      "lines GPU-0/ctl: PRIORITY 3",
      "changed",
      'lines GPU-0/status: {"b":1}',
      "flush",
      "lines GPU-0/job: j1",
    ]);
    expect(sync.stats.vmLines).toBe(3);
    expect(sync.stats.readbacks).toBe(1);
  });

  test("a save that fails hands nothing over, and the next read-back finds the same lines", async () => {
    let fail = true;
    const { sync, events } = setup({
      persist: {
        changed: () => {},
        flush: () => {
          if (fail) throw new Error("disk full");
        },
        sending: () => {},
      },
    });
    const vm = console_(files({ ctl: ["PRIORITY 3"], lease: [], status: [] }));
    await expect(sync.readBack(vm.session, signal)).rejects.toThrow("disk full");
    expect(events).toEqual([]);
    fail = false;
    await sync.readBack(vm.session, signal);
    expect(events).toEqual(["lines GPU-0/ctl: PRIORITY 3"]);
  });

  test("with no stored mirror, what the VM already holds is history; what it writes afterwards is new", async () => {
    const { sync, events, logged } = setup({ fresh: true });
    const f = files({ ctl: ["PRIORITY 1"], lease: [], status: [] });
    await sync.readBack(console_(f).session, signal);
    expect(events).toEqual(["flush", "history GPU-0/ctl: PRIORITY 1"]);
    expect(logged.join("\n")).toContain("/gpu/GPU-0/ctl: 1 lines already in the VM, taken as history");
    expect(sync.stats.vmLines).toBe(0);
    events.length = 0;
    f[`/gpu/${GPU}/ctl`] = ["PRIORITY 1", "PRIORITY 2"];
    await sync.readBack(console_(f).session, signal);
    expect(events).toEqual(["flush", "lines GPU-0/ctl: PRIORITY 2"]);
    expect(sync.stats.vmLines).toBe(1);
  });
});

describe("files the VM lacks, and consoles that cannot read", () => {
  test("a missing node file asks for a full snapshot, naming the first one missing", async () => {
    const { sync, events, logged } = setup();
    await sync.readBack(console_(files({ ctl: [] })).session, signal);
    expect(events).toEqual(["publish"]);
    expect(logged.join("\n")).toContain("full snapshot due: /gpu/GPU-0/lease is missing in the VM");
  });

  test("a missing job file is normal: no snapshot, and it is not asked again on that connection", async () => {
    const { sync, events, clock } = setup();
    const vm = console_(files({ ctl: [], lease: [], status: [] }));
    await sync.readBack(vm.session, signal);
    expect(events).toEqual([]);
    clock.advance(1000);
    await sync.readBack(vm.session, signal);
    expect(vm.asked.filter((l) => l.endsWith("/job"))).toEqual([`CAT /gpu/${GPU}/job`]);
    const again = console_(files({ ctl: [], lease: [], status: [], job: ["j"] }));
    await sync.readBack(again.session, signal);
    expect(again.asked).toContain(`CAT /gpu/${GPU}/job`);
    expect(events).toEqual(["flush", "lines GPU-0/job: j"]);
  });

  test("a console that cannot read stops the read-back until the next poll is due", async () => {
    const { sync, clock, logged } = setup();
    const vm = console_(files({ ctl: "unsupported", lease: [], status: [] }));
    expect(sync.hasWork()).toBe(true);
    await sync.readBack(vm.session, signal);
    expect(vm.asked).toEqual([`CAT /gpu/${GPU}/ctl`]);
    expect(sync.readback.mode).toBe("unsupported");
    expect(sync.hasWork()).toBe(false);
    expect(sync.pausedFor()).toBe(1000);
    clock.advance(999);
    expect(sync.hasWork()).toBe(false);
    clock.advance(1);
    expect(sync.hasWork()).toBe(true);
    await sync.readBack(vm.session, signal);
    expect(vm.asked.length).toBe(1); // the same connection is not asked again
    expect(logged.filter((l) => l.includes("cannot read the VM's files back")).length).toBe(1);
  });

  test("a console that stops reading after the probe: no line of that read-back is handed over, and it waits for the next poll", async () => {
    const { sync, events } = setup();
    // The probe (ctl) is read; the console then refuses the rest for good.
    const vm = console_(files({ ctl: ["PRIORITY 3"], lease: "unsupported", status: ['{"b":1}'], job: ["j1"] }));
    await sync.readBack(vm.session, signal);
    expect(vm.asked).toEqual(["ctl", "lease", "status", "job"].map((f) => `CAT /gpu/${GPU}/${f}`));
    // The ctl line read before the refusal waits for a read-back that completes; nothing later is taken.
    expect(events.filter((e) => e.startsWith("lines"))).toEqual(["lines GPU-0/ctl: PRIORITY 3"]);
    expect(sync.stats.vmLines).toBe(1);
    expect(sync.hasWork()).toBe(false);
    expect(sync.pausedFor()).toBe(1000);
  });
});

describe("a VM that does not keep to what the bridge left", () => {
  test("lines past a file's cap are ignored, counted, and warned about once per connection", async () => {
    const { sync, logged, clock, events } = setup();
    const ctl = Array.from({ length: 30 }, (_, i) => `PRIORITY ${String(i).padStart(30, "0")}`); // 40 bytes each
    const f = files({ ctl, lease: [], status: [] });
    const vm = console_(f);
    await sync.readBack(vm.session, signal);
    const within = Math.floor(1024 / 40);
    expect(sync.stats.overCapLines).toBe(30 - within);
    clock.advance(1000);
    events.length = 0;
    await sync.readBack(vm.session, signal);
    expect(sync.stats.overCapLines).toBe(2 * (30 - within));
    expect(events).toContain("changed"); // nothing new, but the mirror noted what the VM holds
    const warned = () => logged.filter((l) => l.includes("lines past its 1024-byte cap; ignored"));
    expect(warned().length).toBe(1);
    expect(warned()[0]).toContain(`/gpu/${GPU}/ctl in the VM holds ${30 - within} lines`);
    await sync.readBack(console_(f).session, signal);
    expect(warned().length).toBe(2);
  });

  test("a node file filled past three quarters of its cap is compacted by a snapshot; the job file never is", async () => {
    const lines = (n: number, width: number) => Array.from({ length: n }, (_, i) => `${i}`.padStart(width - 1, "x"));
    const low = setup();
    await low.sync.readBack(console_(files({ ctl: lines(19, 40), lease: [], status: [], job: lines(700, 40) })).session, signal);
    expect(low.events).not.toContain("publish"); // 760 of 1024 bytes, and a 28000-byte job file
    const exact = setup();
    await exact.sync.readBack(console_(files({ ctl: [...lines(19, 40), "1234567"], lease: [], status: [] })).session, signal);
    expect(exact.events).not.toContain("publish"); // exactly 768 of 1024: at the mark, not past it
    const high = setup();
    await high.sync.readBack(console_(files({ ctl: lines(20, 40), lease: [], status: [] })).session, signal);
    expect(high.events).toContain("publish"); // 800 of 1024
    expect(high.logged.join("\n")).toContain("/gpu/GPU-0/ctl: 800 of 1024 bytes used; republishing it compacted");
  });

  test("a VM holding something else than the bridge left is warned about once per connection and saved", async () => {
    const { sync, events, logged, clock } = setup();
    const f = files({ ctl: ["a", "b"], lease: [], status: [] });
    await sync.readBack(console_(f).session, signal);
    f[`/gpu/${GPU}/ctl`] = ["b"];
    events.length = 0;
    const vm = console_(f);
    await sync.readBack(vm.session, signal);
    expect(events).toEqual(["changed"]);
    clock.advance(1000);
    await sync.readBack(vm.session, signal);
    const warned = logged.filter((l) => l.includes("is not what the bridge last left there"));
    expect(warned.length).toBe(1);
    expect(warned[0]).toContain(`/gpu/${GPU}/ctl in the VM`);
  });
});

describe("what reading back costs on the link", () => {
  // Each frame costs its 4-byte length prefix and its text; a reply's ack is counted at most
  // 128 bytes (the console shortens its data= field) and its END as 4 more.
  test("a file read: the request, the ack, each line and END; a missing file: the request and its refusal", async () => {
    const { sync } = setup();
    const long = "y".repeat(200);
    await sync.readBack(console_(files({ ctl: ["abc", long, "z"], lease: [], status: [] })).session, signal);
    const cat = (file: string) => 4 + `CAT /gpu/${GPU}/${file}`.length;
    const ack = (file: string, last: string) => Math.min(128, `OK CAT path=/gpu/${GPU}/${file} data=${last}`.length);
    const expected = cat("ctl") + 8 + ack("ctl", "z") + (4 + 3) + (4 + 200) + (4 + 1) +
      cat("lease") + 8 + ack("lease", "") +
      cat("status") + 8 + ack("status", "") +
      cat("job") + 4 + "reason=not-found".length + 8;
    expect(sync.stats.catBytes).toBe(expected);
    expect(sync.stats.catFrames).toBe((1 + 3 + 2) + (1 + 2) + (1 + 2) + (1 + 1));
  });
});

describe("whether a console reads back", () => {
  const refusal = (line: string) => new ConsoleError("rejected", line, { ack: parseAck(line)! });

  test("only a refusal of that verb for good means it cannot", () => {
    expect(lacksVerb(refusal("ERR CAT reason=unsupported"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=policy"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=unsupported"), "LS")).toBe(false);
    expect(lacksVerb(refusal("ERR CAT reason=busy"), "CAT")).toBe(false);
    expect(lacksVerb(refusal("ERR CAT reason=policy delay_ms=100"), "CAT")).toBe(false);
    expect(lacksVerb(refusal("ERR CAT"), "CAT")).toBe(false);
    expect(lacksVerb(new ConsoleError("timeout", "ERR CAT reason=unsupported", { ack: parseAck("ERR CAT reason=unsupported")! }), "CAT"))
      .toBe(false);
    expect(lacksVerb(new ConsoleError("rejected", "no ack at all"), "CAT")).toBe(false);
    expect(lacksVerb(new Error("ERR CAT reason=unsupported"), "CAT")).toBe(false);
  });

  test("the loss is told once across connections; recovery is told once, only after a loss", () => {
    const { log, lines } = memoryLogger();
    const probe = new ReadbackProbe(log);
    const a = {}, b = {}, c = {};
    expect(probe.mode).toBe("unknown");
    expect(probe.usable(a)).toBe(true);
    probe.answered();
    expect(probe.mode).toBe("supported");
    expect(lines).toEqual([]);
    expect(probe.refused(new Error("x"))).toBe(false);
    expect(probe.mode).toBe("supported");
    expect(probe.usable(b)).toBe(true);
    expect(probe.mode).toBe("unknown");
    expect(probe.refused(refusal("ERR CAT reason=unsupported"))).toBe(true);
    expect(probe.usable(b)).toBe(false);
    expect(probe.usable(c)).toBe(true);
    probe.refused(refusal("ERR CAT reason=unsupported"));
    const warned = lines.filter((l) => l.includes("cannot read the VM's files back (ERR CAT reason=unsupported)"));
    expect(warned.length).toBe(1);
    expect(warned[0]).toContain("publishing without read-back, as the reference bridge does. Each snapshot replaces");
    expect(warned[0]).toContain("lines the VM's own clients write there (leases the Queen grants");
    expect(warned[0]).toContain("Read-back is probed again on every new connection.");
    probe.usable(a);
    probe.answered();
    probe.answered();
    expect(lines.filter((l) => l.includes("reads the VM's files back again")).length).toBe(1);
    probe.usable(b);
    probe.answered();
    expect(lines.filter((l) => l.includes("reads the VM's files back again")).length).toBe(1);
  });
});

describe("before a snapshot's end", () => {
  test("new lines in a file the snapshot replaces build it again; new job lines do not", async () => {
    const { sync, logged } = setup();
    const f = files({ ctl: [], lease: [], status: [], job: [] });
    await sync.beforePublish(console_(f).session, signal);
    f[`/gpu/${GPU}/job`] = ["j1"];
    expect(await sync.beforeEnd(console_(f).session, signal)).toBe(true);
    f[`/gpu/${GPU}/ctl`] = ["PRIORITY 4"];
    expect(await sync.beforeEnd(console_(f).session, signal)).toBe(false);
    expect(sync.stats.snapshotRetries).toBe(1);
    expect(logged.join("\n")).toContain("the VM wrote 1 lines while a snapshot was on its way");
  });
});

describe("a VM sync with nothing wired", () => {
  test("reads back without saving or handing over anything, and does not fail", async () => {
    const sync = new VmSync({ log: memoryLogger().log, clock: new FakeClock(), readbackMs: 1000, minSnapshotMs: 0 });
    const ns: Namespace = { nodes: [{ id: GPU, info: "", ctl: "", lease: "", status: "" }], active: "", models: [], telemetrySchema: "" };
    sync.built(ns, { sha256: "s" } as Snapshot);
    const f = files({ ctl: ["a"], lease: [], status: [] });
    await sync.readBack(console_(f).session, signal); // history
    f[`/gpu/${GPU}/ctl`] = ["a", "b"];
    await sync.readBack(console_(f).session, signal); // new lines
    f[`/gpu/${GPU}/ctl`] = ["b"];
    await sync.readBack(console_(f).session, signal); // diverged, nothing new
    expect(sync.stats.vmLines).toBe(1);
  });

  test("a bridge with no GPU asks nothing and learns nothing of the console", async () => {
    const sync = new VmSync({ log: memoryLogger().log, clock: new FakeClock(), readbackMs: 1000, minSnapshotMs: 0 });
    sync.built({ nodes: [], active: "", models: [], telemetrySchema: "" }, { sha256: "s" } as Snapshot);
    const vm = console_(files({}));
    await sync.readBack(vm.session, signal);
    expect(vm.asked).toEqual([]);
    expect(sync.readback.mode).toBe("unknown");
  });

  test("a CAT refused without an ack is passed on as it came", async () => {
    const { sync } = setup();
    const odd = new ConsoleError("rejected", "refused, no ack");
    const session = { requestLines: () => Promise.reject(odd) } as unknown as ConsoleSession;
    expect(await sync.readBack(session, signal).catch((e: unknown) => e)).toBe(odd);
  });
});
