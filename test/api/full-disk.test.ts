/**
 * The HTTP surface on a full disk (a small real tmpfs as --state-dir): what cannot be stored is
 * never acknowledged. Telemetry is 507 (never 202) with the cause; a lease whose journal entry
 * does not fit is 507 and not granted. Everything acknowledged is there after a restart.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { createApp } from "../../src/api/app.ts";
import { describeError } from "../../src/api/errors.ts";
import { DiskWriteError } from "../../src/util/files.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import type { TelemetryRecord } from "../../src/telemetry/record.ts";
import { fillDisk, memoryLogger, smallTmpfs } from "../helpers.ts";
import { record } from "../telemetry/helpers.ts";

const probe = smallTmpfs(64);
if (probe.path === null) console.warn(`SKIPPED full-disk API tests: ${probe.reason}`);
else probe.cleanup();
const maybe = probe.path === null ? test.skip : test;

let disk: { path: string; cleanup: () => void } | undefined;
beforeEach(() => {
  const d = smallTmpfs(512);
  disk = d.path === null ? undefined : d;
});
afterEach(() => disk?.cleanup());

async function bridge(state: string) {
  const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", state], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log, lines } = memoryLogger();
  const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
  const app = createApp({ token: "t", log, bridge: daemon });
  const post = (path: string, body: unknown) =>
    app.request(path, {
      method: "POST",
      headers: { Authorization: "Bearer t", "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  return { daemon, post, lines };
}

maybe("telemetry and leases on a full state disk: 507 naming the cause, never 202, and nothing acknowledged is lost", async () => {
  const state = join(disk!.path, "state");
  const first = await bridge(state);
  const acked: number[] = [];
  const statuses = new Set<number>();
  const space = fillDisk(disk!.path);
  let i = 0;
  for (let attempt = 0; attempt < 60; attempt++) {
    const batch = Array.from({ length: 1 + (attempt % 4) }, () => record(i++));
    const res = await first.post("/v1/telemetry", batch);
    statuses.add(res.status);
    if (res.status === 202) {
      acked.push(...batch.map((r) => r.token_count));
      continue;
    }
    expect(res.status).toBe(507);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("insufficient_storage");
    expect(body.error.message).toContain("disk is full");
  }
  expect(statuses.has(507)).toBe(true);
  expect(first.lines.some((l) => l.includes("WARN") && l.includes("answered 507"))).toBe(true);

  const lease = { gpu_id: "GPU-0", worker_id: "w1", mem_mb: 10, streams: 1, ttl_s: 60, priority: 1 };
  const refused = await first.post("/v1/leases", lease);
  expect(refused.status).toBe(507);
  expect(first.daemon.host.leases.live()).toEqual([]); // not granted: it would be forgotten at restart

  space.free();
  const granted = await first.post("/v1/leases", lease);
  expect(granted.status).toBe(201);
  const id = ((await granted.json()) as { id: string }).id;
  const late = await first.post("/v1/telemetry", [record(i)]);
  expect(late.status).toBe(202);
  acked.push(100 + i);
  await first.daemon.stop();

  const second = await bridge(state);
  try {
    const found = [...second.daemon.telemetry.spool.records()].map((r) => (r as TelemetryRecord).token_count);
    expect(found).toEqual(acked);
    expect(second.daemon.host.leases.live().map((l) => l.id)).toEqual([id]);
  } finally {
    await second.daemon.stop();
  }
});

test("a write refused for any other reason than space (read-only, I/O) is 503 storage_unavailable, with the cause", () => {
  const rofs = describeError(
    new DiskWriteError("/state/telemetry/seg-00000001.spool", Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" })),
  );
  expect(rofs).toMatchObject({ status: 503, code: "storage_unavailable" });
  expect(rofs.message).toContain("read-only file system");
  expect(describeError(new DiskWriteError("/x", { code: "EDQUOT" }))).toMatchObject({ status: 507, code: "insufficient_storage" });
});
