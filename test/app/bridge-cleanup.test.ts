/**
 * createBridge() starts its parts one after another; when a late step fails, every part an
 * earlier step started is ended before the error reaches the caller: no timer left on the
 * clock (the leases' expiry, the CDI keeper's refresh), no file under the state folder held open.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-bridge-cleanup-")));
afterEach(() => dir.cleanup());

/** The files under `dir` this process holds open. */
function openFilesUnder(dir: string): string[] {
  return readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(dir + "/") ? [target] : [];
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return []; // the fd that listed the folder, closed by now
      throw error;
    }
  });
}

test("a late wiring step that fails (the spool's folder is a file) ends every part started before it", async () => {
  const state = join(dir.path, "state");
  const registry = join(dir.path, "registry");
  mkdirSync(join(registry, "available", "base-v1"), { recursive: true });
  writeFileSync(join(registry, "available", "base-v1", "manifest.toml"), '[model]\nid = "base-v1"\n');
  const argv = ["serve", "--mock", "--no-api", "--state-dir", state, "--registry", registry, "--cdi-dir", join(dir.path, "cdi")];
  const c = parseCommand(argv, {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const clock = new FakeClock();
  const ports = { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() };
  // A first bridge leaves a live lease in the journal: the next start restores it and arms its expiry.
  const first = await createBridge(c.options, ports, { clock });
  first.host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 100, streams: 1, ttl_s: 600, priority: 1 });
  await first.stop();
  expect(clock.pending).toBe(0);
  rmSync(join(state, "telemetry"), { recursive: true });
  writeFileSync(join(state, "telemetry"), "not a folder");

  const error = await createBridge(c.options, ports, { clock }).catch((e) => e as Error);

  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toContain(`${join(state, "telemetry")} is a file, not a folder`);
  expect(clock.pending).toBe(0);
  expect(openFilesUnder(dir.path)).toEqual([]);
});
