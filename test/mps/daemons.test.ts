/** `serve --mps`'s daemons against the fake nvidia-cuda-mps-control: started, adopted, stopped, refused. */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MpsDaemons, type MpsEvent, mpsFolders } from "../../src/mps/daemons.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempFolder } from "../helpers.ts";
import { control, FAKE_MPS } from "./helpers.ts";

const GPUS = [
  { id: "GPU-0", uuid: "GPU-11111111-2222-3333-4444-55556666aaaa", migMode: "disabled" as const },
  { id: "GPU-1", uuid: "GPU-99999999-8888-7777-6666-55554444bbbb", migMode: null },
];

const running: { stateDir: string; gpuId: string }[] = [];
afterEach(() => {
  // A daemon a test left running (an adopted one) is told to quit, so none outlives the run.
  for (const r of running.splice(0)) control(r.stateDir, r.gpuId, [], "quit\n");
});

function setup(binary = FAKE_MPS) {
  const stateDir = tempFolder("mps-");
  const { log, lines } = memoryLogger();
  const events: MpsEvent[] = [];
  const daemons = new MpsDaemons({
    stateDir,
    binary,
    spawn: bunRuntime().spawn,
    log,
    clock: new FakeClock(),
    onEvent: (e) => events.push(e),
  });
  for (const g of GPUS) running.push({ stateDir, gpuId: g.id });
  return { stateDir, daemons, lines, events };
}

describe("MpsDaemons", () => {
  test("starts one daemon per GPU with its folders under the state folder, bound to the GPU's UUID, and stops them", async () => {
    const t = setup();
    await t.daemons.start(GPUS);
    expect(t.daemons.list().map((d) => [d.gpu_id, d.state])).toEqual([["GPU-0", "started"], ["GPU-1", "started"]]);
    for (const g of GPUS) {
      const dirs = mpsFolders(t.stateDir, g.id);
      expect(dirs.pipe).toBe(join(t.stateDir, "mps", g.id, "pipe"));
      expect(existsSync(join(dirs.pipe, "control"))).toBe(true);
      expect(readFileSync(join(dirs.log, "control.log"), "utf8")).toContain(`CUDA_MPS_PIPE_DIRECTORY=${dirs.pipe}`);
      expect(control(t.stateDir, g.id, [], "get_server_list\n").code).toBe(0);
    }
    expect(t.events.map((e) => `${e.type} ${e.daemon.gpu_id}`)).toEqual(["mps.started GPU-0", "mps.started GPU-1"]);
    await t.daemons.stop();
    for (const g of GPUS) {
      expect(existsSync(join(mpsFolders(t.stateDir, g.id).pipe, "control"))).toBe(false);
      expect(control(t.stateDir, g.id, [], "get_server_list\n")).toEqual({ code: 1, out: "Cannot find MPS control daemon process\n" });
    }
    expect(t.events.slice(2).map((e) => `${e.type} ${e.daemon.gpu_id}`)).toEqual(["mps.stopped GPU-0", "mps.stopped GPU-1"]);
  });

  test("a daemon already answering on a GPU's pipe folder is adopted, and left running at the stop", async () => {
    const t = setup();
    expect(control(t.stateDir, "GPU-0", ["-d"]).code).toBe(0);
    await t.daemons.start(GPUS);
    expect(t.daemons.get("GPU-0")!.state).toBe("adopted");
    expect(t.daemons.get("GPU-1")!.state).toBe("started");
    await t.daemons.stop();
    expect(control(t.stateDir, "GPU-0", [], "get_server_list\n").code).toBe(0); // still there: not ours to stop
    expect(control(t.stateDir, "GPU-1", [], "get_server_list\n").code).toBe(1);
    expect(t.events.map((e) => e.type)).toEqual(["mps.adopted", "mps.started", "mps.stopped"]);
  });

  test("a pipe folder that cannot be created is refused with the control program's reason; the other GPU still gets its daemon", async () => {
    const t = setup();
    const { pipe } = mpsFolders(t.stateDir, "GPU-0");
    // A file where the GPU's folder should be: neither the bridge nor the daemon can make the pipe folder.
    Bun.spawnSync(["mkdir", "-p", join(pipe, "..", "..")]);
    writeFileSync(join(pipe, ".."), "not a folder");
    await t.daemons.start(GPUS);
    const d = t.daemons.get("GPU-0")!;
    expect(d.state).toBe("failed");
    expect(d.reason).toMatch(/^Cannot create .*mps\/GPU-0: /);
    expect(t.daemons.get("GPU-1")!.state).toBe("started");
    expect(t.lines.some((l) => l.includes("No MPS for GPU-0") && l.includes("no CDI device"))).toBe(true);
    expect(t.events.map((e) => `${e.type} ${e.daemon.gpu_id}`)).toEqual(["mps.failed GPU-0", "mps.started GPU-1"]);
    await t.daemons.stop();
  });

  test("the daemon's own refusal (its pipe folder not writable) is named, with the program and what it said", async () => {
    const t = setup();
    const { pipe } = mpsFolders(t.stateDir, "GPU-0");
    Bun.spawnSync(["mkdir", "-p", join(pipe, "..")]);
    writeFileSync(pipe, "a file where the pipe folder goes");
    await t.daemons.start(GPUS.slice(0, 1));
    const d = t.daemons.get("GPU-0")!;
    expect(d.state).toBe("failed");
    expect(d.reason).toBe(`${FAKE_MPS} -d failed: Failed to create pipe directory ${pipe}`);
    await t.daemons.stop();
  });

  test("a missing control program, a GPU without a UUID and a GPU in MIG mode each say why", async () => {
    const t = setup(join(tempFolder("mps-none-"), "nvidia-cuda-mps-control"));
    await t.daemons.start([
      GPUS[0]!,
      { id: "GPU-1", uuid: null, migMode: "disabled" },
      { id: "GPU-2", uuid: "GPU-x", migMode: "enabled" },
    ]);
    const [a, b, c] = t.daemons.list();
    expect(a!.state).toBe("failed");
    expect(a!.reason).toContain("Cannot run");
    expect(a!.reason).toContain("GPU_BRIDGE_MPS_CONTROL");
    expect(b).toMatchObject({ state: "failed", reason: "the backend gives no UUID for GPU-1, so no daemon can be bound to it" });
    expect(c!.state).toBe("skipped");
    expect(c!.reason).toContain("MIG mode");
    expect(t.events.map((e) => e.type)).toEqual(["mps.failed", "mps.failed"]);
  });

  test("a control program that hangs is given up on after the timeout, on the injected clock", async () => {
    const dir = tempFolder("mps-hang-");
    const hang = join(dir, "hang");
    writeFileSync(hang, "#!/bin/sh\nexec sleep 30\n", { mode: 0o755 });
    const clock = new FakeClock();
    const { log } = memoryLogger();
    const daemons = new MpsDaemons({ stateDir: dir, binary: hang, spawn: bunRuntime().spawn, log, clock, timeoutMs: 500 });
    const started = daemons.start(GPUS.slice(0, 1));
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(500);
    await started;
    expect(daemons.get("GPU-0")).toMatchObject({ state: "failed", reason: `${hang} (get_server_list) did not answer within 500 ms` });
  });
});
