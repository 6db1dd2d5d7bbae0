/**
 * `models watch --exec CMD` against a real bridge over HTTP: CMD runs once per activation with
 * the model in its environment, a failing CMD is reported and the watch goes on, and across a
 * bridge restart the watch resumes, is told of the gap and catches up on the model active now.
 */
import { afterAll, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../../src/cli/options.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { importModel } from "../../src/models/import.ts";
import { type ActivationSeen, shellRunner, watchActivations } from "../../src/models/exec-watch.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, REPO, tempDir, until } from "../helpers.ts";

const tmp = tempDir("gbh-exec-watch-");
const reg = join(tmp.path, "registry");
const out = join(tmp.path, "cmd.log");
afterAll(() => tmp.cleanup());

async function start(listen: string): Promise<{ daemon: Bridge; api: { port: number; token: string; close(): Promise<void> } }> {
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "state"), "--registry", reg, "--listen", listen], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, { noJournal: true });
  return { daemon, api: await startApi(c.options, daemon, { runtime: bunRuntime(), log }) };
}

test("CMD runs on every activation with id, path and shard; a failing CMD does not stop it; a restart is caught up", async () => {
  cpSync(join(REPO, "mock", "registry"), reg, { recursive: true });
  for (const id of ["lora-a", "lora-bad"]) {
    const dir = join(tmp.path, `bundle-${id}`);
    cpSync(join(reg, "available", "demo-lora-v1"), dir, { recursive: true });
    writeFileSync(join(dir, "lora.json"), JSON.stringify({ base_model: "demo-base-v1" }));
    importModel({ bundle: dir, id, registry: reg, approval: "approved" });
  }
  let bridge = await start("127.0.0.1:0");
  const port = bridge.api.port;
  const put = (model_id: string) =>
    fetch(`http://127.0.0.1:${port}/v1/models/active`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${bridge.api.token}`, "content-type": "application/json" },
      body: JSON.stringify({ model_id }),
    }).then((r) => r.status);

  const runs: { seen: ActivationSeen; status: number | string }[] = [];
  const { log, lines } = memoryLogger();
  const stop = new AbortController();
  const watching = watchActivations({
    url: `http://127.0.0.1:${port}/`,
    command: `printf '%s|%s|%s\\n' "$GPU_BRIDGE_MODEL_ID" "$GPU_BRIDGE_MODEL_PATH" "$GPU_BRIDGE_MODEL_SHARD" >> '${out}'; ` +
      `[ "$GPU_BRIDGE_MODEL_ID" != lora-bad ] || exit 3`,
    run: shellRunner,
    log,
    signal: stop.signal,
    backoff: { baseMs: 20, capMs: 200 },
    onRun: (seen, status) => runs.push({ seen, status }),
  });
  try {
    await until(() => lines.some((l) => l.includes("following")), 5000, "the watch connected");
    const cmdLines = () => (existsSync(out) ? readFileSync(out, "utf8").trim().split("\n") : []);

    expect(await put("lora-a")).toBe(200);
    await until(() => runs.length === 1, 5000, "CMD for lora-a");
    expect(cmdLines()).toEqual([`lora-a|${join(reg, "available", "lora-a")}|`]);

    expect(await put("lora-bad")).toBe(200);
    await until(() => runs.length === 2, 5000, "CMD for lora-bad");
    expect(runs[1]!.status).toBe(3);
    expect(lines.some((l) => l.includes("failed for lora-bad (exit status 3); still watching"))).toBe(true);

    // The bridge restarts; meanwhile the pointer is moved back to the base by hand.
    await bridge.api.close();
    await bridge.daemon.stop();
    writeFileSync(join(reg, "active"), "demo-base-v1\n");
    await until(() => lines.some((l) => l.includes("cannot follow") || l.includes("stream ended")), 5000, "the watch noticed");
    bridge = await start(`127.0.0.1:${port}`);
    // The new bridge numbers its changes afresh: the watch is told of the gap and reads the model active now.
    await until(() => runs.length === 3, 10_000, "CMD after the restart");
    expect(lines.some((l) => l.includes("cannot replay every change"))).toBe(true);
    expect(runs[2]!.seen).toEqual({ model_id: "demo-base-v1", path: join(reg, "available", "demo-base-v1"), shard: null });

    // And it follows the new bridge's activations.
    expect(await put("lora-a")).toBe(200);
    await until(() => runs.length === 4, 5000, "CMD for lora-a after the restart");
    expect(cmdLines().at(-1)).toBe(`lora-a|${join(reg, "available", "lora-a")}|`);
    expect(runs.map((r) => r.seen.model_id)).toEqual(["lora-a", "lora-bad", "demo-base-v1", "lora-a"]);
  } finally {
    stop.abort();
    await watching;
    await bridge.api.close();
    await bridge.daemon.stop();
  }
});
