/** `--list`, `stats` and the daemon without --mock, as users run them, against the fakes. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { createBridge } from "../../src/app/bridge.ts";
import { selectBackend } from "../../src/inventory/mod.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, REPO, until } from "../helpers.ts";
import { CTL_FILE, fakeEnv, ORIN_ROOT, scriptFakes } from "./fakes.ts";

async function run(args: string[]) {
  const proc = Bun.spawn([process.execPath, join(REPO, "src", "main.ts"), ...args], {
    env: { PATH: process.env.PATH ?? "", ...fakeEnv, FAKE_GPU_CTL: CTL_FILE },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

test("--list without --mock lists the fake server's GPUs", async () => {
  scriptFakes({});
  const r = await run(["--list"]);
  expect(r.code).toBe(0);
  const list = JSON.parse(r.stdout);
  expect(list.nodes.map((n: { id: string }) => n.id)).toEqual(["GPU-0", "GPU-1"]);
  expect(JSON.parse(list.nodes[1].info_payload)).toEqual({
    id: "GPU-1",
    name: "NVIDIA H100 80GB HBM3",
    memory_mb: 81559,
    sm_count: 132,
    driver_version: "550.54.15",
    runtime_version: "12.4",
  });
});

test("--list --sys-root on a fake Jetson lists the Orin", async () => {
  scriptFakes({ jetson: 1 });
  const r = await run(["--list", "--sys-root", ORIN_ROOT]);
  expect(r.code).toBe(0);
  expect(JSON.parse(JSON.parse(r.stdout).nodes[0].info_payload)).toMatchObject({ name: "Orin", memory_mb: 7441, sm_count: 16 });
});

test("stats --json prints the live stats; the table form has one row per GPU", async () => {
  scriptFakes({});
  const json = await run(["stats", "--json"]);
  expect(json.code).toBe(0);
  expect(JSON.parse(json.stdout).map((s: { uuid: string }) => s.uuid)).toEqual([
    "GPU-11111111-2222-3333-4444-55556666aaaa",
    "GPU-99999999-8888-7777-6666-55554444bbbb",
  ]);
  const table = await run(["stats"]);
  expect(table.stdout.split("\n")[1]).toMatch(/^GPU-0\s+NVIDIA A100-SXM4-40GB\s+37%\s+1024\/40960 MiB\s+41 C\s+85\.3 W/);
  expect(table.stdout).toContain("(backend: nvml)");
});

test("--mock conflicts with another --backend", async () => {
  const r = await run(["--mock", "--backend", "nvml", "--list"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("Option --mock conflicts with --backend nvml");
});

let mock: MockConsole;
beforeAll(async () => (mock = await startMockConsole(bunRuntime(), { token: "tok" })));
afterAll(() => mock.close());

test("the daemon drops a vanished GPU from the next snapshot", async () => {
  scriptFakes({});
  const c = parseCommand([
    "serve",
    "--backend",
    "nvml",
    "--publish",
    "--interval-ms",
    "50",
    "--tcp-port",
    String(mock.port),
    "--auth-token",
    "tok",
  ], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  // The fakes are found through GPU_BRIDGE_*_LIB, which selectBackend reads from process.env.
  Object.assign(process.env, fakeEnv);
  const backend = await selectBackend(c.options, log);
  const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend }, { noJournal: true });
  try {
    await until(() => mock.state.tree?.nodes.length === 2, 5000, "both GPUs published");
    scriptFakes({ count: 1 });
    await until(() => mock.state.tree?.nodes.length === 1, 5000, "the vanished GPU dropped");
    expect(mock.state.tree!.nodes[0]!.id).toBe("GPU-0");
  } finally {
    await daemon.stop();
    backend.close();
  }
});
