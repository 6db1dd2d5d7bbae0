/**
 * Every durable writer on a full disk (a small real tmpfs): it writes whole or fails naming the
 * path and ENOSPC, and a good file it would replace stays as it was. Skipped, with the reason,
 * where a tmpfs cannot be mounted (not root).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LeaseJournal } from "../../src/lease/journal.ts";
import type { Lease } from "../../src/lease/types.ts";
import { resolveApiToken } from "../../src/api/auth.ts";
import { CdiKeeper } from "../../src/cdi/keeper.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { loadSealSecret } from "../../src/vram/seal-key.ts";
import { DiskWriteError, replaceFileDurably } from "../../src/util/files.ts";
import { main } from "../../src/main.ts";
import { FakeClock, fillDisk, memoryLogger, memoryStdio, smallTmpfs } from "../helpers.ts";

const probe = smallTmpfs(64);
if (probe.path === null) console.warn(`SKIPPED full-disk writer tests: ${probe.reason}`);
else probe.cleanup();
const maybe = probe.path === null ? test.skip : test;

let disk: { path: string; cleanup: () => void } | undefined;
beforeEach(() => {
  const d = smallTmpfs(128);
  disk = d.path === null ? undefined : d;
});
afterEach(() => disk?.cleanup());
const root = () => disk!.path;

const lease = (i: number): Lease => ({
  id: `lease-${i}`,
  gpu_id: "GPU-0",
  worker_id: `w${i}`,
  mem_mb: 10,
  streams: 1,
  ttl_s: 60,
  priority: 1,
  state: "ACTIVE",
  granted_at: Date.now(),
  expires_at: Date.now() + 60_000,
});

describe("durable writers on a full disk", () => {
  maybe("the lease journal: an append fails whole, and the journal replays every acknowledged entry", () => {
    const path = join(root(), "state", "leases.jsonl");
    const journal = new LeaseJournal(path);
    const acked: string[] = [];
    const space = fillDisk(root());
    let refused = 0;
    for (let i = 0; i < 200 && refused < 5; i++) {
      try {
        journal.grant(lease(i));
        acked.push(`lease-${i}`);
      } catch (error) {
        expect(error).toBeInstanceOf(DiskWriteError);
        expect((error as Error).message).toContain(path);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    space.free();
    journal.grant(lease(999)); // after the space comes back: a whole line after the last whole line
    acked.push("lease-999");
    journal.close();
    const { leases, problems } = new LeaseJournal(path).load();
    expect(problems).toEqual([]);
    expect(leases.map((l) => l.id)).toEqual(acked);
  });

  maybe("the lease journal: a compaction that cannot be written leaves the old journal whole", () => {
    const path = join(root(), "leases.jsonl");
    const journal = new LeaseJournal(path);
    for (let i = 0; i < 5; i++) journal.grant(lease(i));
    const before = readFileSync(path, "utf8");
    const space = fillDisk(root());
    expect(() => journal.compact([0, 1, 2, 3, 4, 5, 6, 7].map(lease))).toThrow(DiskWriteError);
    expect(readFileSync(path, "utf8")).toBe(before);
    space.free();
  });

  maybe("the API token file: not written at all rather than half written", () => {
    const space = fillDisk(root());
    const state = join(root(), "state");
    mkdirSync(state);
    expect(() => resolveApiToken(undefined, {}, state)).toThrow(/--state-dir .*api-token is full \(ENOSPC\)/);
    expect(readdirSync(state)).toEqual([]);
    space.free();
    const { token } = resolveApiToken(undefined, {}, state);
    expect(readFileSync(join(state, "api-token"), "utf8")).toBe(token + "\n");
  });

  maybe("the seal key: no half key is left behind to be refused at every later start", () => {
    const path = join(root(), "vram-seal.key");
    const space = fillDisk(root());
    expect(() => loadSealSecret(path)).toThrow();
    expect(existsSync(path)).toBe(false);
    space.free();
    expect(loadSealSecret(path).length).toBe(32);
  });

  maybe("cdi files: a spec that does not fit leaves the old one whole and no temporary behind", () => {
    const path = join(root(), "bridge.json");
    replaceFileDurably(path, JSON.stringify({ old: true }), 0o644);
    const space = fillDisk(root());
    expect(() => replaceFileDurably(path, JSON.stringify({ devices: "x".repeat(20_000) }), 0o644)).toThrow(DiskWriteError);
    expect(readFileSync(path, "utf8")).toBe('{"old":true}');
    expect(readdirSync(root()).filter((f) => f.includes("tmp"))).toEqual([]);
    space.free();
  });

  maybe("the --cdi-dir keeper: a spec that does not fit keeps the old file and says why", async () => {
    const clock = new FakeClock();
    const leases = new LeaseManager({ gpus: () => [{ id: "GPU-0", memory_mb: 1000 }], clock });
    const spec = (n: number) => ({
      cdiVersion: "0.5.0",
      kind: "cohesix/gpu",
      devices: [{ name: "0", containerEdits: { deviceNodes: [{ path: "/dev/nvidia0", type: "c", major: 195, minor: 0 }] } }],
      containerEdits: { env: Array.from({ length: n }, (_, i) => `PAD${i}=${"x".repeat(100)}`) },
    });
    let n = 1;
    const { log, lines } = memoryLogger();
    const keeper = new CdiKeeper({
      dir: root(),
      generate: () => Promise.resolve({ spec: spec(n), warnings: [] }),
      leases,
      log,
      clock,
      refreshMs: 1000,
    });
    await keeper.start();
    const good = readFileSync(keeper.path, "utf8");
    const space = fillDisk(root());
    n = 400; // about 40 KB: does not fit
    await clock.run(1000);
    expect(readFileSync(keeper.path, "utf8")).toBe(good);
    expect(lines.some((l) => l.includes(keeper.path) && l.includes("disk is full"))).toBe(true);
    space.free();
    await clock.run(1000);
    expect(readFileSync(keeper.path, "utf8")).not.toBe(good);
    keeper.stop();
  });

  maybe("cdi apply --output on a full disk exits non-zero and leaves the old file whole", async () => {
    const specs = join(root(), "specs");
    mkdirSync(specs);
    writeFileSync(
      join(specs, "gpu.json"),
      JSON.stringify({
        cdiVersion: "0.5.0",
        kind: "example.com/gpu",
        devices: [{ name: "0", containerEdits: { env: Array.from({ length: 300 }, (_, i) => `PAD${i}=${"x".repeat(100)}`) } }],
      }),
    );
    const config = join(root(), "config.json");
    writeFileSync(config, JSON.stringify({ ociVersion: "1.0.2", process: { env: [], cwd: "/" }, root: { path: "rootfs" } }));
    const out = join(root(), "out.json");
    writeFileSync(out, "OLD");
    const space = fillDisk(root());
    const t = memoryStdio();
    const code = await main(
      ["cdi", "apply", "--cache-dir", join(root(), "cache"), "--spec-dir", specs, "--input", config, "--output", out, "example.com/gpu=0"],
      {},
      t.io,
    );
    expect(code).not.toBe(0);
    expect(readFileSync(out, "utf8")).toBe("OLD");
    expect(t.err.join("")).toContain(out);
    expect(t.err.join("")).toContain("disk is full");
    space.free();
  });
});
