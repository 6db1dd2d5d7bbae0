/** The daemon as users run it: a child process publishing to the mock console. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir, until } from "../helpers.ts";
import { createApp } from "../../src/api/app.ts";
import { REPO_ROOT, spawnBridge } from "../spawn.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { parseCommand } from "../../src/cli/options.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let reg: { path: string; cleanup: () => void };

function model(id: string) {
  mkdirSync(join(reg.path, "available", id), { recursive: true });
  writeFileSync(join(reg.path, "available", id, "manifest.toml"), `[model]\nid = "${id}"\n`);
}
/** Replaces `active` atomically, as an operator's tooling would. */
function activate(id: string) {
  writeFileSync(join(reg.path, "active.tmp"), `${id}\n`);
  renameSync(join(reg.path, "active.tmp"), join(reg.path, "active"));
}

beforeEach(async () => {
  mock = await startMockConsole(runtime, { token: "tok" });
  reg = tempDir("gbh-daemon-");
  model("base-v1");
  model("lora-v2");
  activate("base-v1");
});
afterEach(async () => {
  await mock.close();
  reg.cleanup();
});

/** The bridge as a daemon, publishing to the mock console (no API: no fixed port to collide on). */
function startBridge(extra: string[] = []) {
  return spawnBridge([
    "--mock",
    "--publish",
    "--interval-ms",
    "60000",
    "--tcp-port",
    String(mock.port),
    "--auth-token",
    "tok",
    "--registry",
    reg.path,
    "--state-dir",
    join(reg.path, "state"),
    "--no-api",
    ...extra,
  ]);
}

describe("the daemon process", () => {
  test.each(["SIGTERM", "SIGINT"] as const)("republishes a registry change within 1 s and exits 0 on %s within 2 s", async (sig) => {
    const bridge = startBridge(["--log-level", "debug"]); // a change's publish line is DEBUG
    await until(() => mock.state.tree?.active === "base-v1", 10_000, "first publish");
    const t0 = performance.now();
    activate("lora-v2");
    await until(() => mock.state.tree?.active === "lora-v2", 3000, "publish of the new active model");
    expect(performance.now() - t0).toBeLessThan(1000);
    // The console applies the snapshot on `end`, before the bridge has its ack: wait for the
    // bridge's own record of the publish, or the signal below would abandon it (as it should).
    await bridge.waitFor(/\(changed\)/, 3000);

    const t1 = performance.now();
    bridge.proc.kill(sig);
    const code = await bridge.proc.exited;
    expect(performance.now() - t1).toBeLessThan(2000);
    expect(code).toBe(0);
    const stderr = bridge.log();
    expect(stderr).toMatch(/published \d+ bytes sha256=[0-9a-f]{12} in \d+ frames, [\d.]+ ms \(connected\)/);
    // The console token never appears as a word of its own, wherever it would stand in a line.
    expect(stderr).not.toMatch(/(?<![A-Za-z0-9._~+\/=-])tok(?![A-Za-z0-9._~+\/=-])/m);
  });

  test("--list with --interval-ms prints the list first, then keeps publishing", async () => {
    const proc = Bun.spawn(
      [
        process.execPath,
        join(REPO_ROOT, "src/main.ts"),
        "--mock",
        "--list",
        "--publish",
        "--interval-ms",
        "60000",
        "--tcp-port",
        String(mock.port),
        "--auth-token",
        "tok",
        "--state-dir",
        join(reg.path, "state"),
        "--no-api",
      ],
      { stdout: "pipe", stderr: "ignore" },
    );
    await until(() => mock.state.publishes === 1, 10_000, "the publish after the list");
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(Buffer.from(await new Response(proc.stdout).arrayBuffer())).toEqual(
      readFileSync(join(REPO_ROOT, "test/fixtures/mock-list.json")),
    );
  });

  test("exits 0 on SIGTERM while a publish is stuck on a silent console", async () => {
    mock.state.faults.silent = true;
    const { proc } = startBridge(["--ack-timeout-ms", "60000"]);
    await until(() => mock.state.linesReceived.length >= 1, 10_000, "the AUTH line");
    const t0 = performance.now();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe("createBridge()", () => {
  test("a manifest edit reaches the VM through the registry watch", async () => {
    const c = parseCommand(
      ["serve", "--mock", "--publish", "--tcp-port", String(mock.port), "--auth-token", "tok", "--registry", reg.path],
      {},
    );
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() }, { registryPollMs: 5000, noJournal: true });
    try {
      await until(() => mock.state.publishes === 1, 5000);
      writeFileSync(join(reg.path, "available", "base-v1", "manifest.toml"), '[model]\nid = "base-v1"\nrev = 2\n');
      await until(() => mock.state.tree?.models[0]?.manifest_toml.includes("rev = 2") === true, 3000, "manifest edit");
    } finally {
      await daemon.stop();
    }
  });
});

describe("reads never touch the hardware", () => {
  /** The mock backend, counting how often the inventory is read. */
  function countingBackend() {
    const inner = mockBackend();
    const counter = { lists: 0 };
    return { counter, backend: { ...inner, list: () => (counter.lists++, inner.list()) } };
  }

  test("GETs of the VM's files, the bridge and the GPUs answer from the inventory as last read", async () => {
    const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", join(reg.path, "state")], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { counter, backend } = countingBackend();
    const clock = new FakeClock();
    const bridge = await createBridge(c.options, { runtime, log: memoryLogger().log, backend }, { noJournal: true, clock });
    try {
      expect(counter.lists).toBe(1); // start-up
      const app = createApp({ token: "t", log: memoryLogger().log, bridge });
      for (
        const path of [
          "/v1/gpus",
          "/v1/gpus/GPU-0",
          "/v1/gpus/GPU-0/info",
          "/v1/gpus/GPU-1/lease",
          "/v1/bridge",
          "/v1/snapshot",
          "/healthz",
        ]
      ) {
        expect((await app.request(path)).status).toBe(200);
      }
      expect(counter.lists).toBe(1);
      // Without a publisher, the inventory is re-read on the interval instead.
      await clock.run(30_000);
      expect(counter.lists).toBe(2);
    } finally {
      await bridge.stop();
    }
    await clock.run(60_000);
    expect(counter.lists).toBe(2); // stop() ended the timer
  });
});

describe("leases through the daemon", () => {
  test("a lease taken by a control line reaches the VM's ctl and lease files", async () => {
    const c = parseCommand(["serve", "--mock", "--publish", "--tcp-port", String(mock.port), "--auth-token", "tok"], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const daemon = await createBridge(c.options, { runtime, log, backend: mockBackend() }, { noJournal: true });
    try {
      await until(() => mock.state.publishes === 1, 5000);
      daemon.host.control("GPU-1", "LEASE worker-7 mem=2048 streams=1 priority=3");
      // The ctl line goes as an append; the ACTIVE record (over the 128-byte echo payload) by a snapshot.
      await until(() => mock.state.read("/gpu/GPU-1/lease")?.includes("worker-7") === true, 3000, "the lease in the VM");
      expect(mock.state.read("/gpu/GPU-1/ctl")).toBe("LEASE GPU-1\nLEASE worker-7 mem=2048 streams=1 priority=3\n");
      expect(mock.state.read("/gpu/GPU-1/lease")).toContain('"worker_id":"worker-7","mem_mb":2048');
      expect(mock.state.read("/gpu/GPU-0/ctl")).toBe("LEASE GPU-0\n");
    } finally {
      await daemon.stop();
    }
  });

  test("leases survive a daemon restart through the journal in --state-dir", async () => {
    const argv = ["serve", "--mock", "--state-dir", join(reg.path, "state")];
    const c = parseCommand(argv, {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { log } = memoryLogger();
    const first = await createBridge(c.options, { runtime, log, backend: mockBackend() });
    const lease = first.host.grant({ gpu_id: "GPU-0", worker_id: "keeper", mem_mb: 100, streams: 1, ttl_s: 600, priority: 1 });
    await first.stop();
    const second = await createBridge(c.options, { runtime, log, backend: mockBackend() });
    try {
      expect(second.host.leases.live().map((l) => l.id)).toEqual([lease.id]);
    } finally {
      await second.stop();
    }
  });
});
