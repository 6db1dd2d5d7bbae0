/** Shared test helpers. */
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "../src/util/log.ts";
import type { Clock } from "../src/util/clock.ts";
import type { Lease } from "../src/lease/types.ts";

export const REPO = join(import.meta.dir, "..");
export const FIXTURE = join(REPO, "test", "fixtures", "mock-list.json");

/**
 * Removes a test's folder even where the test made parts of it unreadable or unwritable (the
 * state-folder and CDI tests chmod folders to 000 or 0555 on purpose).
 */
function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    const open = (p: string): void => {
      try {
        chmodSync(p, 0o700);
        for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) open(join(p, e.name));
      } catch { /* not ours to open: rmSync below says what is left */ }
    };
    open(path);
    try {
      rmSync(path, { recursive: true, force: true });
    } catch { /* a mount still on it (smallTmpfs): its own cleanup unmounts and removes it */ }
  }
}

/** Every folder `tempFolder` made in this process and has not removed yet (one list, whatever module instance). */
const TEMP_FOLDERS: Set<string> = ((globalThis as Record<symbol, unknown>)[Symbol.for("gbh.tempFolders")] ??= new Set<string>()) as Set<
  string
>;
const SWEEPER = Symbol.for("gbh.tempFolders.sweeper");

/** Removes every folder `tempFolder` made; test/setup.ts (bunfig.toml's preload) runs it after the last test. */
export function removeTempFolders(): void {
  for (const path of TEMP_FOLDERS) removeTree(path);
  TEMP_FOLDERS.clear();
}

/** Marks the process as one whose temporary folders test/setup.ts removes. */
export function installTempSweeper(): void {
  (globalThis as Record<symbol, unknown>)[SWEEPER] = true;
}

/**
 * A fresh folder under the temporary folder, removed after the run's last test (test/setup.ts,
 * preloaded through bunfig.toml: an `afterAll` registered here instead would run wherever it was
 * called from, e.g. right after the test whose `beforeEach` made it, before its `afterEach`).
 * Every test that needs a temporary folder gets it from here or from `tempDir`, so no caller can
 * forget the removal: test/docs/tmp-cleanup.test.ts fails on a direct `mkdtemp` anywhere else
 * under test/. Outside `bun test` (a benchmark borrowing the helper) the process's exit removes it.
 */
export function tempFolder(prefix = "gbh-"): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  TEMP_FOLDERS.add(path);
  if (TEMP_FOLDERS.size === 1 && (globalThis as Record<symbol, unknown>)[SWEEPER] !== true) process.once("exit", removeTempFolders);
  return path;
}

/** A temporary directory removed by the returned cleanup, and after the run's last test in any case. */
export function tempDir(prefix = "gbh-"): { path: string; cleanup: () => void } {
  const path = tempFolder(prefix);
  return {
    path,
    cleanup: () => {
      removeTree(path);
      TEMP_FOLDERS.delete(path);
    },
  };
}

/** A logger that records lines instead of printing them. */
export function memoryLogger(level: "debug" | "info" | "warn" | "error" = "debug"): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level, write: (l) => lines.push(l) }), lines };
}

/** Resolves when `predicate` holds, polling every 5 ms, or rejects after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** Lets every pending promise callback (and what those schedule in turn) run; no timers. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A manual clock: timers fire, in deadline order, only when `advance` (synchronous: for code
 * that reacts at once) or `run` (async: settles promises between timers, for loops that await)
 * passes them.
 */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fire: () => void }>();
  #next = 1;
  /** Timers ever set (to show one timer serves many leases). */
  timersSet = 0;

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }
  now = (): number => this.#now;
  setTimer = (delayMs: number, fire: () => void): unknown => {
    this.timersSet++;
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + delayMs, fire });
    return id;
  };
  clearTimer = (handle: unknown): void => void this.#timers.delete(handle as number);
  get pending(): number {
    return this.#timers.size;
  }
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].fire();
    }
    this.#now = end;
  }

  /** When the next timer is due, or null. */
  nextAt(): number | null {
    let at: number | null = null;
    for (const t of this.#timers.values()) if (at === null || t.at < at) at = t.at;
    return at;
  }

  /**
   * Moves time forward by `ms`, firing each timer at its own due time, in order, and letting the
   * promises it settles run (a loop's next await, a timer it sets) before the next one.
   */
  async run(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].fire();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

/** Standard streams for `main()` in memory: what it writes, and `stdin` as all of its input. */
export function memoryStdio(stdin = ""): {
  out: string[];
  err: string[];
  io: { stdout: (t: string) => Promise<void>; stderr: (t: string) => void; stdin: () => Promise<string> };
} {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      stdout: (t: string) => Promise.resolve(void out.push(t)),
      stderr: (t: string) => void err.push(t),
      stdin: () => Promise.resolve(stdin),
    },
  };
}

/**
 * A tmpfs of `kib` KiB mounted on a fresh folder, for full-disk tests (root only). Returns null
 * with the reason where it cannot be mounted; callers skip visibly with that reason.
 */
export function smallTmpfs(kib: number): { path: string; cleanup: () => void } | { path: null; reason: string } {
  const dir = tempFolder("gbh-tmpfs-");
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${kib}k,mode=0700`, "tmpfs", dir], { stderr: "pipe" });
  if (r.exitCode !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { path: null, reason: `cannot mount a ${kib} KiB tmpfs (needs root): ${r.stderr.toString().trim()}` };
  }
  return {
    path: dir,
    cleanup: () => {
      Bun.spawnSync(["umount", "-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system under `root` to its last byte with files that `free()` removes again. */
export function fillDisk(root: string): { free: () => void } {
  const made: string[] = [];
  for (const size of [1 << 16, 1 << 12, 1 << 9, 1 << 6, 8, 1]) {
    for (let n = 0;; n++) {
      const f = join(root, `.fill-${size}-${n}`);
      try {
        writeFileSync(f, new Uint8Array(size));
        made.push(f);
      } catch {
        rmSync(f, { force: true });
        break;
      }
    }
  }
  return { free: () => made.forEach((f) => rmSync(f, { force: true })) };
}

/** An ACTIVE lease of 64 MiB on GPU-0 held by "w" that never expires, with `over` changed. */
export function activeLease(over: Partial<Lease> = {}): Lease {
  return {
    id: "L1",
    gpu_id: "GPU-0",
    worker_id: "w",
    mem_mb: 64,
    streams: 1,
    ttl_s: 60,
    priority: 0,
    state: "ACTIVE",
    granted_at: 0,
    expires_at: 1e15,
    ...over,
  };
}

/**
 * A vadd job descriptor as the API takes it: operands a = 1 2 3 4 and b = 10 20 30 40 as Cohesix
 * sends them (docs/protocol.md section 12: little-endian f32, a then b), their hash, no files.
 */
export function vaddJob(job: string): Record<string, unknown> {
  const payload = new Uint8Array(new Float32Array([1, 2, 3, 4, 10, 20, 30, 40]).buffer);
  return {
    job,
    kernel: "vadd",
    grid: [1, 1, 1],
    block: [32, 1, 1],
    bytes_hash: `sha256:${createHash("sha256").update(payload).digest("hex")}`,
    inputs: [],
    outputs: [],
    timeout_ms: 20000,
    payload_b64: Buffer.from(payload).toString("base64"),
  };
}
