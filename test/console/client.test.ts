import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { run as runConsole } from "../../src/commands/console.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { UsageError } from "../../src/cli/flags.ts";
import { ConsoleError } from "../../src/console/errors.ts";
import { publishOnce } from "../../src/console/publish.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { memoryLogger } from "../helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;

beforeAll(async () => {
  mock = await startMockConsole(runtime, { token: "tok" });
  const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
  await publishOnce(runtime.connect, { host: "127.0.0.1", port: mock.port, token: "tok", ticket: "" }, snap, publishLines(snap));
});
afterAll(() => mock.close());

/** `gpu-bridge-host console ARGS` against the mock: what it prints, or the ConsoleError the entry point turns into exit 1. */
async function run(...args: string[]): Promise<string> {
  const command = parseCommand(["console", ...args, "--tcp-port", String(mock.port), "--auth-token", "tok"], {});
  if (command.kind !== "console") throw new Error(`parsed as ${command.kind}`);
  let out = "";
  const io = { stdout: (s: string) => Promise.resolve(out += s), stdin: () => Promise.resolve(""), logger: () => memoryLogger().log };
  expect(await runConsole(command, io, runtime.connect)).toBe(0);
  return out;
}

describe("gpu-bridge-host console", () => {
  test("ls, echo and cat, as the Queen and as a worker-gpu, against the mock VM", async () => {
    expect(await run("ls", "/gpu")).toBe("bridge\nmodels\ntelemetry\nGPU-0\nGPU-1\n");
    const spawn = '{"spawn":"gpu","lease":{"gpu_id":"GPU-1","mem_mb":512,"streams":1,"ttl_s":60}}';
    expect(await run("echo", "/queen/ctl", spawn)).toBe(`OK ECHO path=/queen/ctl bytes=${spawn.length}\n`);
    expect(JSON.parse(await run("cat", "/gpu/GPU-1/lease"))).toMatchObject({ state: "ACTIVE", worker_id: "worker-1", mem_mb: 512 });
    expect(await run("echo", "/gpu/GPU-1/ctl", "RELEASE", "worker-1", "done", "--role", "worker-gpu", "--ticket", "t-1")).toStartWith(
      "OK ECHO",
    );
    expect(await run("cat", "/gpu/GPU-1/ctl")).toBe("LEASE GPU-1\nRELEASE worker-1 done\n");
  });

  test("cat and ls show the VM's control and bidi characters escaped, unless --raw asks for the text as sent", async () => {
    const hostile = "\u001b[2J\u001b]0;owned\u0007 job \u202eexe.txt\u2028RELEASE x \u009b";
    expect(mock.state.vm.append("/gpu/GPU-0/ctl", hostile)).toBeNull();
    const shown = await run("cat", "/gpu/GPU-0/ctl");
    expect(shown).toBe("LEASE GPU-0\n\\u001b[2J\\u001b]0;owned\\u0007 job \\u202eexe.txt\\u2028RELEASE x \\u009b\n");
    expect(shown).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2028\u2029]/);
    expect(await run("cat", "/gpu/GPU-0/ctl", "--raw")).toBe(`LEASE GPU-0\n${hostile}\n`);
    expect(parseCommand(["console", "cat", "/x"], {})).toMatchObject({ request: { raw: false } });
  });

  test("a refusal is a ConsoleError with the console's answer; bad arguments are usage errors naming them", async () => {
    const refused = run("echo", "/gpu/GPU-0/status", "not-json");
    await expect(refused).rejects.toBeInstanceOf(ConsoleError);
    await expect(refused).rejects.toThrow("error=payload must be a JSON object");
    await expect(run("cat", "/gpu/nope")).rejects.toThrow("reason=not-found path=/gpu/nope");
    expect(() => parseCommand(["console", "rm", "/gpu"], {})).toThrow(UsageError);
    expect(() => parseCommand(["console", "cat", "gpu"], {})).toThrow('console cat: needs an absolute path, got "gpu"');
    expect(() => parseCommand(["console", "ls", "/gpu", "--role", "worker-gpu"], {})).toThrow("--role worker-gpu needs --ticket");
    expect(parseCommand(["console", "--help"], {})).toEqual({ kind: "help", topic: "console" });
  });
});
