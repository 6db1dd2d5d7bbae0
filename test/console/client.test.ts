import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../mock/inventory.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { consoleCommand, parseConsoleArgs } from "../../src/console-client-command.ts";
import { UsageError } from "../../src/cli/flags.ts";
import { publishOnce } from "../../src/console/publish.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/namespace/mod.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../../src/snapshot/encode.ts";

const runtime = bunRuntime();
let mock: MockConsole;

beforeAll(async () => {
  mock = await startMockConsole(runtime, { token: "tok" });
  const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
  await publishOnce(runtime.connect, { host: "127.0.0.1", port: mock.port, token: "tok", ticket: "" }, snap, publishLines(snap));
});
afterAll(() => mock.close());

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await consoleCommand([...args, "--tcp-port", String(mock.port), "--auth-token", "tok"], {}, {
    connect: runtime.connect,
    out: (s) => (out += s),
    err: (s) => (err += s),
  });
  return { code, out, err };
}

describe("gpu-bridge-host console", () => {
  test("ls, echo and cat, as the Queen and as a worker-gpu, against the mock VM", async () => {
    expect(await run("ls", "/gpu")).toEqual({ code: 0, out: "bridge\nmodels\ntelemetry\nGPU-0\nGPU-1\n", err: "" });
    const spawn = '{"spawn":"gpu","lease":{"gpu_id":"GPU-1","mem_mb":512,"streams":1,"ttl_s":60}}';
    expect((await run("echo", "/queen/ctl", spawn)).out).toBe(`OK ECHO path=/queen/ctl bytes=${spawn.length}\n`);
    const lease = await run("cat", "/gpu/GPU-1/lease");
    expect(JSON.parse(lease.out)).toMatchObject({ state: "ACTIVE", worker_id: "worker-1", mem_mb: 512 });
    const w = await run("echo", "/gpu/GPU-1/ctl", "RELEASE", "worker-1", "done", "--role", "worker-gpu", "--ticket", "t-1");
    expect(w.code).toBe(0);
    expect((await run("cat", "/gpu/GPU-1/ctl")).out).toBe("LEASE GPU-1\nRELEASE worker-1 done\n");
  });

  test("a refusal is exit 1 with the console's answer; bad arguments are usage errors naming them", async () => {
    const r = await run("echo", "/gpu/GPU-0/status", "not-json");
    expect(r.code).toBe(1);
    expect(r.err).toContain("error=payload must be a JSON object");
    expect((await run("cat", "/gpu/nope")).err).toContain("reason=not-found path=/gpu/nope");
    expect(() => parseConsoleArgs(["rm", "/gpu"], {})).toThrow(UsageError);
    expect(() => parseConsoleArgs(["cat", "gpu"], {})).toThrow('console cat: needs an absolute path, got "gpu"');
    expect(() => parseConsoleArgs(["ls", "/gpu", "--role", "worker-gpu"], {})).toThrow("--role worker-gpu needs --ticket");
  });
});
