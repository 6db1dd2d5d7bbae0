/** A lease restored from the journal at start gets its share socket and token back, as a granted one does. */
import { afterAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, tempDir } from "../helpers.ts";

const tmp = tempDir("gbh-share-restore-");
afterAll(() => tmp.cleanup());

const start = async () => {
  const c = parseCommand(["serve", "--mock", "--state-dir", join(tmp.path, "s"), "--no-api"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  return await createBridge(c.options, { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() });
};

test("a restored lease's socket and token are there after a restart; a lease's end removes them", async () => {
  const first = await start();
  const lease = first.host.leases.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 16, streams: 1, ttl_s: 600, priority: 1 });
  const sock = join(tmp.path, "s", "share", `${lease.id}.sock`);
  await new Promise((r) => setTimeout(r, 50)); // the socket listens asynchronously after the grant
  expect(existsSync(sock)).toBe(true);
  await first.stop();
  expect(existsSync(sock)).toBe(false); // the bridge's end takes it
  const second = await start();
  try {
    expect(second.host.leases.get(lease.id)?.state).toBe("ACTIVE");
    expect(existsSync(sock)).toBe(true);
    expect(existsSync(join(tmp.path, "s", "share", `${lease.id}.token`))).toBe(true);
    second.host.leases.release(lease.id, "done");
    expect(existsSync(sock)).toBe(false);
  } finally {
    await second.stop();
  }
});
