import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { findApiToken } from "../../src/api/auth.ts";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import type { Runner } from "../../src/job/runner.ts";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { LeaseManager, MAX_TIMER_MS } from "../../src/lease/manager.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";

const idle: Runner = { run: () => new Promise(() => {}) };
let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-journal-")));
afterEach(() => dir.cleanup());

const NOW = 1_700_000_000_000;
const lease = (id: string, o: Record<string, unknown> = {}) => ({
  id,
  gpu_id: "GPU-0",
  worker_id: `w-${id}`,
  mem_mb: 1024,
  streams: 1,
  ttl_s: 120,
  priority: 1,
  state: "ACTIVE",
  granted_at: NOW,
  expires_at: NOW + 120_000,
  ...o,
});
const grant = (l: unknown) => JSON.stringify({ op: "grant", lease: l });

function start(lines: string[], clock = new FakeClock(NOW)) {
  const path = join(dir.path, "leases.jsonl");
  writeFileSync(path, lines.join("\n") + "\n");
  const m = memoryLogger();
  const journal = new LeaseJournal(path);
  const host = new HostState({ gpus: () => MOCK_GPUS, runner: idle, runnerKind: "cpu", log: m.log, onChange: () => {}, clock, journal });
  return { host, lines: m.lines, path, journal, clock };
}

describe("a journal of the wrong shape is skipped line by line, never trusted", () => {
  test("valid JSON that is no journal entry is skipped with a line number, and start-up goes on", () => {
    const { host, lines } = start(["null", '{"op":"grant"}', "42", '{"op":"renew","id":"a"}', grant(lease("good"))]);
    expect(() => host.restore()).not.toThrow();
    expect(host.leases.live().map((l) => l.id)).toEqual(["good"]);
    const text = lines.join("");
    for (const n of [1, 2, 3, 4]) expect(text).toContain(`leases.jsonl:${n}: `);
    host.close();
  });

  test("restored leases are held to what a grant allows", () => {
    const { host, lines } = start([
      grant(lease("gpu", { gpu_id: "GPU-9" })),
      grant(lease("big", { mem_mb: 999_999 })),
      grant(lease("neg", { mem_mb: -5 })),
      grant(lease("ok1", { worker_id: "dup" })),
      grant(lease("dup2", { worker_id: "dup" })),
      grant(lease("nl", { worker_id: "evil\nLEASE x" })),
      grant(lease("sum1", { gpu_id: "GPU-1", mem_mb: 8000 })),
      grant(lease("sum2", { gpu_id: "GPU-1", mem_mb: 8000 })),
    ]);
    host.restore();
    expect(host.leases.live().map((l) => l.id).sort()).toEqual(["ok1", "sum1"]);
    const text = lines.join("");
    expect(text).toContain('lease gpu not restored: unknown GPU "GPU-9"');
    expect(text).toContain("lease big not restored: insufficient memory on GPU-0");
    expect(text).toContain("lease dup2 not restored: dup already holds lease ok1");
    expect(text).toContain("lease sum2 not restored: insufficient memory on GPU-1");
    expect(host.nodeLogs("GPU-0")!.ctl!.includes("evil")).toBe(false);
    host.close();
  });
});

describe("lease deadlines hold past 2^31-1 ms and with a clock far behind", () => {
  class RecordingClock extends FakeClock {
    delays: number[] = [];
    override setTimer = (ms: number, fire: () => void): unknown => {
      this.delays.push(ms);
      return new FakeClock().setTimer(ms, fire);
    };
  }

  test("booting with the clock 30 days behind: the lease gets its TTL from now, and no timer delay overflows", () => {
    const clock = new RecordingClock(NOW - 30 * 86_400_000);
    const { host, lines } = start([grant(lease("a"))], clock);
    host.restore();
    const l = host.leases.get("a")!;
    expect(l.expires_at).toBe(clock.now() + 120_000);
    expect(Math.max(...clock.delays)).toBeLessThanOrEqual(MAX_TIMER_MS);
    expect(lines.join("")).not.toContain("WARN"); // a clean restore
    host.close();
  });

  test("the clock set back 30 days while a lease runs: its deadline is re-armed in steps of at most 2^31-1 ms, never overflowing", () => {
    const clock = new FakeClock(NOW);
    let offset = 0;
    const seen: number[] = [];
    const spy = {
      now: () => clock.now() + offset,
      setTimer: (ms: number, f: () => void) => (seen.push(ms), clock.setTimer(ms, f)),
      clearTimer: clock.clearTimer,
    };
    const m = new LeaseManager({ gpus: () => [{ id: "G", memory_mb: 10 }], clock: spy });
    const l = m.grant({ gpu_id: "G", worker_id: "w", mem_mb: 1, streams: 1, ttl_s: 7 * 86400, priority: 0 });
    offset = -30 * 86_400_000; // NTP corrects a clock that ran 30 days fast
    clock.advance(7 * 86_400_000); // the first timer fires: nothing is due by the new clock
    expect(m.get(l.id)!.state).toBe("ACTIVE");
    expect(Math.max(...seen)).toBeLessThanOrEqual(MAX_TIMER_MS);
    const timersBefore = clock.timersSet;
    clock.advance(30 * 86_400_000);
    expect(m.get(l.id)!.state).toBe("RELEASED");
    expect(clock.timersSet - timersBefore).toBeLessThan(5); // a few steps, not a timer every millisecond
    m.close();
  });
});

describe("the running journal stays bounded", () => {
  // 600 appends: past COMPACT_AFTER twice, and over the bound below were nothing compacted.
  // Each append is synced, so a busy disk makes this slow: it has its own minute.
  test("300 grant/release cycles leave a journal proportional to the live leases", () => {
    const { host, path } = start([]);
    host.restore();
    for (let i = 0; i < 300; i++) {
      host.control("GPU-0", `LEASE w${i} mem=1 streams=1 priority=1`);
      host.control("GPU-0", `RELEASE w${i} done`);
    }
    expect(statSync(path).size).toBeLessThan(200 * 1024 / 4);
    host.close();
  }, 60_000);
});

describe("a FIFO in the state directory never blocks start-up", () => {
  test("as the lease journal: start-up goes on without leases, saying why, instead of blocking", () => {
    const path = join(dir.path, "leases.jsonl");
    expect(spawnSync("mkfifo", [path]).status).toBe(0);
    const m = memoryLogger();
    const host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: idle,
      runnerKind: "cpu",
      log: m.log,
      onChange: () => {},
      clock: new FakeClock(NOW),
      journal: new LeaseJournal(path),
    });
    host.restore();
    expect(m.lines.join("")).toContain("cannot read the journal");
    expect(statSync(path).isFile()).toBe(true); // compacted into a regular file
    host.close();
  });

  test("as the API token file: refused with an error instead of blocking", () => {
    expect(spawnSync("mkfifo", [join(dir.path, "api-token")]).status).toBe(0);
    expect(() => findApiToken(undefined, {}, dir.path)).toThrow("not a regular file");
  });
});
