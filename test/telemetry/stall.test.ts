/**
 * A forwarding stall is visible: the age of the oldest record not yet forwarded in
 * GET /v1/telemetry and /metrics, and a warning on the clock when forwarding makes no progress
 * while records wait and the console is up.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { createApp } from "../../src/api/app.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { TelemetryForwarder } from "../../src/telemetry/forward.ts";
import { acceptRecord } from "../../src/telemetry/record.ts";
import { Spool } from "../../src/telemetry/spool.ts";
import { FakeClock, memoryLogger, tempDir } from "../helpers.ts";
import { record } from "./helpers.ts";

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-stall-")));
afterEach(() => dir.cleanup());
const accepted = (i: number) => {
  const r = acceptRecord(record(i), { model_id: "m" });
  if (!r.ok) throw new Error(r.message);
  return r.record;
};

describe("the stall watch", () => {
  function setup() {
    const clock = new FakeClock();
    const { log, lines } = memoryLogger();
    const spool = Spool.open({ dir: dir.path, log, clock });
    const forwarder = new TelemetryForwarder({ spool, deviceId: "edge-7", log, clock });
    const link = { up: true };
    const stop = forwarder.watch(() => link.up, 60_000);
    const warnings = () => lines.filter((l) => l.includes("WARN") && l.includes("made no progress"));
    return { clock, spool, forwarder, link, stop, lines, warnings };
  }

  test("warns once when records wait a whole interval without progress and the console is up, then says when it moves", () => {
    const t = setup();
    t.clock.advance(120_000);
    expect(t.warnings()).toEqual([]); // nothing waits
    t.spool.append([accepted(0), accepted(1)]);
    t.clock.advance(59_999);
    expect(t.warnings()).toEqual([]);
    t.clock.advance(1); // a whole interval without progress
    expect(t.warnings().length).toBe(1);
    expect(t.warnings()[0]).toContain("2 records wait (the oldest for 60 s) and the console is up");
    t.clock.advance(600_000);
    expect(t.warnings().length).toBe(1); // once per stall, not once a minute
    expect(t.forwarder.stalls).toBe(1);
    expect(t.forwarder.stalled).toBe(true); // GET /v1/telemetry says "forwarding":"stalled"
    t.spool.advance({ queenSeg: "q", seq: 2, queenBytes: 10 }, false);
    t.clock.advance(60_000);
    expect(t.lines.some((l) => l.includes("forwarding moves again (1 records waiting)"))).toBe(true);
    expect(t.forwarder.stalled).toBe(false);
    t.clock.advance(120_000);
    expect(t.warnings().length).toBe(2); // stuck again
    t.stop();
    t.spool.close();
  });

  test("no warning while the console is down: there is nothing to forward to", () => {
    const t = setup();
    t.link.up = false;
    t.spool.append([accepted(0)]);
    t.clock.advance(600_000);
    expect(t.warnings()).toEqual([]);
    t.link.up = true;
    t.clock.advance(60_000);
    expect(t.warnings().length).toBe(1);
    t.stop();
    expect(t.clock.pending).toBe(0);
    t.spool.close();
  });
});

test("GET /v1/telemetry and /metrics show how long the oldest record not yet forwarded has waited", async () => {
  const clock = new FakeClock();
  const c = parseCommand(["serve", "--mock", "--no-api", "--state-dir", join(dir.path, "state")], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log } = memoryLogger();
  const daemon = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, { noJournal: true, clock });
  const app = createApp({ token: "t", log, bridge: daemon });
  try {
    const get = async () => (await (await app.request("/v1/telemetry")).json()) as { oldest_unforwarded_age_s: number };
    expect((await get()).oldest_unforwarded_age_s).toBe(0);
    const res = await app.request("/v1/telemetry", {
      method: "POST",
      headers: { Authorization: "Bearer t", "content-type": "application/json" },
      body: JSON.stringify([record(1)]),
    });
    expect(res.status).toBe(202);
    clock.advance(90_500);
    expect((await get()).oldest_unforwarded_age_s).toBe(90);
    const metrics = await (await app.request("/metrics")).text();
    expect(metrics).toContain("\ngpu_bridge_telemetry_oldest_unforwarded_age_seconds 90\n");
  } finally {
    await daemon.stop();
  }
});
