/**
 * The daemon's spec does not outlive the daemon: a clean stop (SIGTERM) removes the file it
 * wrote, lease devices and all, and a start after a crash rewrites it from the leases the journal
 * restores, dropping the lease devices a dead run left. Run on `serve --mock`, whose GPUs bring
 * their own device nodes, so no GPU or root is needed.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CdiKeeper } from "../../src/cdi/keeper.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { FakeClock, memoryLogger, tempDir, tempFolder } from "../helpers.ts";
import { LISTENING, spawnBridge } from "../spawn.ts";

const TOKEN = "cdi-shutdown-test-token-0123456789abcdef";
const dir = tempDir("gbh-cdi-shutdown-");
afterAll(() => dir.cleanup());

function serve() {
  const args = ["serve", "--mock", "--state-dir", join(dir.path, "state"), "--cdi-dir", join(dir.path, "cdi")];
  return spawnBridge([...args, "--listen", "127.0.0.1:0", "--api-token", TOKEN]);
}
const specPath = join(dir.path, "cdi", "gpu-bridge-host.json");
const names = () => (JSON.parse(readFileSync(specPath, "utf8")) as CdiSpec).devices.map((d) => d.name);

test("SIGTERM removes the spec and its lease devices; a start after a crash drops a dead run's lease devices", async () => {
  const first = serve();
  const port = Number((await first.waitFor(LISTENING))[1]);
  expect(names()).toEqual(["0", "GPU-00000000-0000-4000-8000-000000000000", "1", "GPU-00000000-0000-4000-8000-000000000001", "all"]);
  const res = await fetch(`http://127.0.0.1:${port}/v1/leases`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ gpu_id: "GPU-1", worker_id: "w1", mem_mb: 10, streams: 1, ttl_s: 600, priority: 1 }),
  });
  expect(res.status).toBe(201);
  const lease = (await res.json()) as { id: string; cdi_device: string };
  expect(lease.cdi_device).toBe(`cohesix/gpu=${lease.id}`);
  expect(names()).toContain(lease.id);

  first.proc.kill("SIGTERM");
  expect(await first.proc.exited).toBe(0);
  expect(existsSync(specPath)).toBe(false);

  // A crash leaves a spec behind: here, one holding a device for a lease the journal never had.
  const stale: CdiSpec = {
    cdiVersion: "0.5.0",
    kind: "cohesix/gpu",
    devices: [{ name: "lease-from-a-dead-run", containerEdits: { env: ["GPU_BRIDGE_LEASE_ID=lease-from-a-dead-run"] } }],
  };
  writeFileSync(specPath, JSON.stringify(stale));
  const second = serve();
  await second.waitFor(LISTENING);
  // The journal's live lease is back, the dead run's is gone.
  expect(names()).toContain(lease.id);
  expect(names()).not.toContain("lease-from-a-dead-run");
  second.proc.kill("SIGKILL");
  await second.proc.exited;
  expect(names()).toContain(lease.id); // a crash cannot clean up: the next start does
}, 60_000);

test("CdiKeeper.stop() removes only the file it wrote, and only once", async () => {
  const cdi = tempFolder("cdi-keeper-stop-");
  const clock = new FakeClock();
  const leases = new LeaseManager({ gpus: () => [{ id: "GPU-0", memory_mb: 1000 }], clock });
  const spec: CdiSpec = { cdiVersion: "0.5.0", kind: "cohesix/gpu", devices: [{ name: "0", containerEdits: { env: ["A=1"] } }] };
  const { log, lines } = memoryLogger();
  const make = () => new CdiKeeper({ dir: cdi, generate: () => Promise.resolve({ spec, warnings: [] }), leases, log, clock });

  const a = make();
  await a.start();
  leases.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 10, streams: 1, ttl_s: 60, priority: 1 });
  expect(existsSync(a.path)).toBe(true);
  a.stop();
  expect(existsSync(a.path)).toBe(false);
  expect(a.current()).toBeNull();
  expect(clock.pending).toBe(1); // the lease's expiry; the keeper's refresh timer is gone
  a.stop(); // twice is harmless

  // Someone else replaced the file meanwhile: not this keeper's to remove.
  const b = make();
  await b.start();
  writeFileSync(b.path, "{}");
  b.stop();
  expect(readFileSync(b.path, "utf8")).toBe("{}");
  expect(lines.filter((l) => l.includes("removed: the bridge stopped")).length).toBe(1);
});
