/**
 * A state folder the bridge cannot use stops start-up with one error naming `--state-dir`, the
 * path and what it needs, never a raw EEXIST/ENOENT/EACCES/EROFS.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { resolveApiToken } from "../../src/api/auth.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { StateDirError, stateDirError } from "../../src/util/state-dir.ts";
import { memoryLogger, smallTmpfs, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-statedir-")));
afterEach(() => dir.cleanup());

async function start(stateDir: string): Promise<unknown> {
  const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", stateDir], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  try {
    const bridge = await createBridge(c.options, { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() });
    await bridge.stop();
    return null;
  } catch (error) {
    return error;
  }
}

describe("--state-dir problems name the flag, the path and the need", () => {
  test("a file where the folder should be", async () => {
    const f = join(dir.path, "state");
    writeFileSync(f, "");
    const error = await start(f);
    expect(error).toBeInstanceOf(StateDirError);
    expect((error as Error).message).toBe(
      `Cannot use the state folder (--state-dir ${JSON.stringify(f)}): ${f} is a file, not a folder; move it away or pick another folder`,
    );
  });

  test("a file where a parent folder should be", async () => {
    writeFileSync(join(dir.path, "plain"), "");
    const error = await start(join(dir.path, "plain", "state"));
    expect((error as Error).message).toContain("--state-dir");
    expect((error as Error).message).toContain(`${join(dir.path, "plain")} is a file where a folder is needed`);
  });

  test("a file where the spool's folder should be", async () => {
    mkdirSync(join(dir.path, "state"));
    writeFileSync(join(dir.path, "state", "telemetry"), "");
    const error = await start(join(dir.path, "state"));
    expect((error as Error).message).toContain(`${join(dir.path, "state", "telemetry")} is a file, not a folder`);
    expect((error as Error).message).toContain("--state-dir");
  });

  test("a folder where the seal key or the API token should be", async () => {
    const state = join(dir.path, "state");
    mkdirSync(join(state, "vram-seal.key"), { recursive: true });
    expect(((await start(state)) as Error).message).toContain(`${join(state, "vram-seal.key")} is not a regular file`);
    mkdirSync(join(dir.path, "s2", "api-token"), { recursive: true });
    expect(() => resolveApiToken(undefined, {}, join(dir.path, "s2"))).toThrow(/--state-dir .*api-token is not a regular file/);
    mkdirSync(join(dir.path, "s3"));
    symlinkSync("/nonexistent", join(dir.path, "s3", "vram-seal.key")); // dangling: reads as "missing"
    expect(((await start(join(dir.path, "s3"))) as Error).message).toContain(
      `${join(dir.path, "s3", "vram-seal.key")} is a symbolic link; the bridge does not follow links`,
    );
  });

  test("permission, read-only and a missing parent are told as what the folder needs", () => {
    const state = join(dir.path, "state");
    const as = (code: string) => stateDirError(state, Object.assign(new Error(code), { code, path: join(state, "leases.jsonl") }))!.message;
    expect(as("EACCES")).toMatch(/--state-dir .*: permission denied on .*leases\.jsonl \(the bridge runs as uid \d+\); make it writable/);
    expect(as("EROFS")).toContain("is on a read-only file system; pick a writable folder");
    expect(as("ENOENT")).toContain("does not exist and could not be made");
    expect(as("ENOSPC")).toContain("is full (ENOSPC)");
    // A failure elsewhere (another flag's folder) is not blamed on --state-dir.
    expect(stateDirError(state, Object.assign(new Error("x"), { code: "EACCES", path: "/etc/cdi/x.json" }))).toBeNull();
  });

  test("a read-only file system (a real read-only tmpfs, as root)", async () => {
    const fs = smallTmpfs(64);
    if (fs.path === null) return console.warn(`SKIPPED read-only state folder: ${fs.reason}`);
    try {
      mkdirSync(join(fs.path, "state"));
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", fs.path]).exitCode).toBe(0);
      const error = await start(join(fs.path, "state"));
      expect((error as Error).message).toBe(
        `Cannot use the state folder (--state-dir ${JSON.stringify(join(fs.path, "state"))}): ${
          join(fs.path, "state")
        } is on a read-only file system; pick a writable folder`,
      );
    } finally {
      fs.cleanup();
    }
  });
});
