/** The entry point as users run it: a child process, real stdout, stderr and exit status. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FIXTURE, REPO } from "../helpers.ts";

const MAIN = join(REPO, "src", "main.ts");

async function run(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd: "/",
    env: { PATH: process.env.PATH ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).arrayBuffer(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout: Buffer.from(stdout), stderr, code };
}

describe("gpu-bridge-host", () => {
  test("--mock --list prints the fixture's exact bytes and exits 0", async () => {
    const r = await run(["--mock", "--list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toEqual(readFileSync(FIXTURE));
    expect(r.stderr).toBe("");
  });

  test("a usage error names the flag and exits 2", async () => {
    const r = await run(["--mock", "--list", "--tcp-port", "nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Option --tcp-port needs a positive integer (1-65535), got "nope"');
    expect(r.stdout.length).toBe(0);
  });

  test("--help and --version exit 0", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout.toString()).toContain("--auth-token TOKEN");
    const version = await run(["--version"]);
    expect(version.stdout.toString()).toMatch(/^gpu-bridge-host \d+\.\d+\.\d+\n$/);
  });

  test("without --mock and without GPUs it fails with a hint to use --mock", async () => {
    const r = await run(["--list"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--mock");
  });

  test("--registry with an unusable directory warns and lists the built-in catalog", async () => {
    const r = await run(["--mock", "--list", "--registry", "/nonexistent/registry"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toEqual(readFileSync(FIXTURE));
    expect(r.stderr).toContain("using the built-in catalog");
  });

  describe("--publish", () => {
    let mock: MockConsole;
    beforeAll(async () => (mock = await startMockConsole(bunRuntime(), { token: "from-env" })));
    afterAll(() => mock.close());

    test("--list --publish prints the list, publishes once and exits 0, never logging the token", async () => {
      const r = await run(["--mock", "--list", "--publish", "--tcp-port", String(mock.port), "--log-level", "debug"], {
        COH_AUTH_TOKEN: "from-env",
      });
      expect(r.code).toBe(0);
      expect(r.stdout).toEqual(readFileSync(FIXTURE));
      expect(r.stderr).toMatch(/published 1477 bytes sha256=704821d10bbd in 20 frames/);
      expect(r.stderr).not.toContain("from-env");
      expect(mock.state.publishes).toBe(1);
    });

    test("a refusal exits 1 with the server's reason", async () => {
      const r = await run(["--mock", "--publish", "--tcp-port", String(mock.port), "--auth-token", "bad"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("Console refused AUTH: reason=invalid-token");
    });
  });
});
