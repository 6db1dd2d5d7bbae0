/**
 * A VM line is handed over once, whatever moment the bridge dies at. Each case "kills" the
 * bridge at one step of a compaction: the state folder and the VM's files are captured at that
 * instant (as a crash would leave them), and a new bridge starts from the copies against a VM
 * holding exactly that. Then one real bridge process is killed with SIGKILL again and again
 * while the VM writes and the logs are compacted.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir, tempFolder, until } from "../helpers.ts";
import { spawnBridge } from "../spawn.ts";
import { saveMirror, sentPath } from "../../src/vm/store.ts";
import { publishingServe } from "./helpers.ts";

const runtime = bunRuntime();
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function mockConsole(files?: Map<string, string>): Promise<MockConsole> {
  const mock = await startMockConsole(runtime, { token: "tok" });
  if (files !== undefined) {
    // A VM that kept its tree while the bridge was down.
    mock.state.vm.files = new Map(files);
    mock.state.vm.gpus = ["GPU-0", "GPU-1"];
    mock.state.vm.landed = true;
  }
  cleanups.push(() => mock.close());
  return mock;
}

async function bridge(mock: MockConsole, stateDir: string, clock: FakeClock) {
  const options = publishingServe(mock.port, "--readback-ms", "30", "--ack-timeout-ms", "600000", "--state-dir", stateDir);
  const { log, lines } = memoryLogger();
  const daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { clock, minSnapshotMs: 0 });
  let stopped = false;
  const stop = async () => {
    if (!stopped) await daemon.stop();
    stopped = true;
  };
  cleanups.push(stop);
  return { daemon, lines, stop };
}

/** Ticks the fake clock while real time passes, until `predicate` holds. */
async function ticking(clock: FakeClock, predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await clock.run(10);
    await Bun.sleep(2);
  }
}

function vmWorker(mock: MockConsole) {
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH tok");
  c.handle("ATTACH worker-gpu ticket");
  return (line: string) => c.handle(`ECHO /gpu/GPU-0/ctl ${line}`).lines[0]!;
}

const handed = (logs: readonly string[], line: string) =>
  logs.filter((l) => l.trimEnd().endsWith(`VM wrote /gpu/GPU-0/ctl: ${line}`)).length;

type Point = "read back and compacted" | "snapshot built" | "before end" | "VM replaced its files" | "landing recorded" | "saved";
const POINTS: Point[] = ["read back and compacted", "snapshot built", "before end", "VM replaced its files", "landing recorded", "saved"];

describe("a VM control line is applied once across a crash", () => {
  // Saves are coalesced: a crash may come with the last change saved, or not yet.
  for (const [point, justSaved] of POINTS.flatMap((p) => [[p, false], [p, true]] as const)) {
    test(`killed at "${point}" in a compaction${justSaved ? ", the mirror saved just before" : ""}`, async () => {
      const state = tempDir("gbh-crash-");
      cleanups.push(state.cleanup);
      const clock = new FakeClock();
      const mock = await mockConsole();
      const first = await bridge(mock, state.path, clock);
      await until(() => mock.state.publishes === 1, 5000, "the first publish");
      const echo = vmWorker(mock);
      // Control lines the VM wrote, then enough notes to pass the compaction mark (768 of 1024 bytes).
      const written = ["RELEASE ghost-1 done", "RESET", "RELEASE ghost-2 done"];
      for (const l of written) expect(echo(l)).toStartWith("OK ECHO");
      await ticking(clock, () => written.every((l) => handed(first.lines, l) === 1), "the control lines handed over");
      for (let i = 0; i < 9; i++) {
        const note = `note ${i} ${"n".repeat(80)}`;
        expect(echo(note)).toStartWith("OK ECHO");
        written.push(note);
      }
      // The capture: the state folder and the VM's files, as one instant.
      const copy = tempFolder("gbh-crash-copy-");
      cleanups.push(() => rmSync(copy, { recursive: true, force: true }));
      let captured: { files: Map<string, string>; logs: number } | null = null;
      const capture = () => {
        if (captured !== null) return;
        cpSync(state.path, copy, { recursive: true });
        if (justSaved) {
          saveMirror(join(copy, "vm-mirror.json"), vm.mirror);
          rmSync(sentPath(join(copy, "vm-mirror.json")), { force: true });
        }
        captured = { files: new Map(mock.state.vm.files), logs: first.lines.length };
      };
      const vm = first.daemon.vm!;
      const wrap = <K extends "beforePublish" | "beforeEnd">(name: K, at: Point) => {
        const original = vm[name].bind(vm) as (...a: unknown[]) => Promise<unknown>;
        (vm as unknown as Record<string, unknown>)[name] = async (...a: unknown[]) => {
          const r = await original(...a);
          if (point === at && vm.stats.compactions > 0) capture();
          return r;
        };
      };
      wrap("beforePublish", "read back and compacted");
      wrap("beforeEnd", "before end");
      const built = vm.built.bind(vm);
      vm.built = (ns, snap) => {
        built(ns, snap);
        if (point === "snapshot built" && vm.stats.compactions > 0) capture();
      };
      const published = vm.published.bind(vm);
      vm.published = (snap) => {
        published(snap);
        if (point === "landing recorded" && vm.stats.compactions > 0) capture();
      };
      mock.state.on((e) => {
        if (e.type === "published" && point === "VM replaced its files" && vm.stats.compactions > 0) capture();
      });
      await ticking(clock, () => vm.stats.compactions > 0 && mock.state.publishes >= 2, "the compacted snapshot");
      if (point === "saved") {
        await ticking(clock, () => !vm.hasWork(), "quiet");
        await clock.run(2000); // past the coalesced save
        capture();
      }
      expect(captured).not.toBeNull();
      const { files, logs } = captured!;
      await first.stop();

      // The new bridge, from what the crash left.
      const mock2 = await mockConsole(files);
      const clock2 = new FakeClock();
      const second = await bridge(mock2, copy, clock2);
      await until(() => mock2.state.publishes >= 1, 5000, "the restarted bridge's publish");
      const later = 'RELEASE ghost-3 "after the restart"';
      expect(vmWorker(mock2)(later)).toStartWith("OK ECHO");
      await ticking(clock2, () => handed(second.lines, later) === 1, "a line written after the restart");
      await ticking(clock2, () => second.daemon.vm!.stats.readbacks >= 3, "more read-backs");
      for (const l of written) {
        const times = handed(first.lines.slice(0, logs), l) + handed(second.lines, l);
        expect({ line: l, times }).toEqual({ line: l, times: 1 });
      }
    }, 20_000);
  }
});

test("a VM control line is on disk as read before it is applied (a crash while applying it never repeats it)", async () => {
  const state = tempDir("gbh-crash-");
  cleanups.push(state.cleanup);
  const clock = new FakeClock();
  const mock = await mockConsole();
  const { daemon } = await bridge(mock, state.path, clock);
  await until(() => mock.state.publishes === 1, 5000, "the first publish");
  const onDisk: boolean[] = [];
  const control = daemon.host.control.bind(daemon.host);
  daemon.host.control = (gpuId, line) => {
    const path = join(state.path, "vm-mirror.json");
    onDisk.push(existsSync(path) && readFileSync(path, "utf8").includes(line));
    return control(gpuId, line);
  };
  expect(vmWorker(mock)("RELEASE ghost-9 done")).toStartWith("OK ECHO");
  await ticking(clock, () => onDisk.length === 1, "the control line applied");
  expect(onDisk).toEqual([true]);
});

describe("a real bridge process killed again and again", () => {
  test("never applies a VM control line twice (SIGKILL during compactions)", async () => {
    const state = tempDir("gbh-kill-");
    cleanups.push(state.cleanup);
    const mock = await mockConsole();
    const echo = vmWorker(mock);
    const written: string[] = [];
    const logs: string[] = [];
    let n = 0;
    for (let round = 0; round < 4; round++) {
      const child = spawnBridge([
        "serve",
        "--mock",
        "--publish",
        "--tcp-port",
        String(mock.port),
        "--auth-token",
        "tok",
        "--readback-ms",
        "20",
        "--state-dir",
        state.path,
        "--listen",
        "127.0.0.1:0",
      ]);
      cleanups.push(() => child.proc.kill("SIGKILL"));
      const publishes = mock.state.publishes;
      await until(() => mock.state.publishes > publishes, 10_000, "the child's first publish");
      // The VM writes control lines and notes (compactions follow) while the child runs.
      const until2 = mock.state.publishes + 2 + (round % 3);
      while (mock.state.publishes < until2) {
        const line = n % 3 === 0 ? `RELEASE ghost-${n} gone` : `note ${n} ${"x".repeat(60)}`;
        if (echo(line).startsWith("OK")) written.push(line);
        n++;
        await Bun.sleep(3);
      }
      child.proc.kill("SIGKILL");
      await child.proc.exited;
      logs.push(...child.log().split("\n"));
    }
    // One last run reads whatever the VM still holds.
    const last = spawnBridge([
      "serve",
      "--mock",
      "--publish",
      "--tcp-port",
      String(mock.port),
      "--auth-token",
      "tok",
      "--readback-ms",
      "20",
      "--state-dir",
      state.path,
      "--listen",
      "127.0.0.1:0",
    ]);
    cleanups.push(() => last.proc.kill("SIGKILL"));
    const publishes = mock.state.publishes;
    await until(() => mock.state.publishes > publishes, 10_000, "the last child's publish");
    await Bun.sleep(300);
    last.proc.kill("SIGTERM");
    await last.proc.exited;
    logs.push(...last.log().split("\n"));
    const control = written.filter((l) => l.startsWith("RELEASE"));
    expect(control.length).toBeGreaterThan(5);
    const twice = control.filter((l) => logs.filter((x) => x.trimEnd().endsWith(`VM wrote /gpu/GPU-0/ctl: ${l}`)).length > 1);
    expect(twice).toEqual([]);
  }, 60_000);
});
