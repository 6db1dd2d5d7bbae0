import { describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import { statusLine } from "../../src/lease/records.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { LIMITS } from "../../src/contract/limits.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot, publishLines, renderSnapshot } from "../../src/contract/snapshot.ts";
import { fitNamespace, snapshotBytes } from "../../src/contract/fit.ts";
import { parseSnapshot } from "../../mock/console/snapshot-parse.ts";
import type { Runner } from "../../src/job/runner.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const utf8 = (s: string) => new TextEncoder().encode(s).length;
const idle: Runner = { run: () => new Promise(() => {}) };

describe("log caps over a long run", () => {
  test("1,500 grant/release cycles on one GPU keep every log within the VM's caps and the snapshot publishable", () => {
    const clock = new FakeClock();
    const host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: idle,
      runnerKind: "cpu",
      log: memoryLogger().log,
      onChange: () => {},
      clock,
    });
    for (let i = 0; i < 1500; i++) {
      host.control("GPU-0", `LEASE worker-${i} mem=1024 streams=1 priority=${i % 256}`);
      host.control("GPU-0", `RELEASE worker-${i} done`);
    }
    const logs = host.nodeLogs("GPU-0")!;
    expect(utf8(logs.ctl!)).toBeLessThanOrEqual(LIMITS.ctlLogBytes - 256);
    expect(utf8(logs.lease!)).toBeLessThanOrEqual(LIMITS.leaseLogBytes);
    expect(utf8(logs.status!)).toBeLessThanOrEqual(LIMITS.statusLogBytes - 1024);
    expect(logs.ctl!.startsWith("LEASE GPU-0\n")).toBe(true);
    expect(logs.ctl!.endsWith("RELEASE worker-1499 done\n")).toBe(true);
    const snap = makeSnapshot(fitNamespace(buildNamespace(MOCK_GPUS, builtinCatalog(), (id) => host.nodeLogs(id))).ns);
    expect(() => publishLines(snap)).not.toThrow();
    host.close();
  });
});

describe("fitNamespace()", () => {
  const gpus = [0, 1, 2, 3, 4, 5].map((i) => ({ ...MOCK_GPUS[0]!, id: `GPU-${i}` }));
  const fullStatus = Array.from({ length: 600 }, (_, i) => statusLine(`job-${i}`, "OK", "completed")).join("\n") + "\n";

  test("snapshotBytes() is the rendered length", () => {
    const ns = buildNamespace(MOCK_GPUS, builtinCatalog(), () => ({ ctl: "LEASE é\n", lease: "", status: fullStatus }));
    expect(snapshotBytes(ns)).toBe(utf8(renderSnapshot(ns)));
  });

  test("six GPUs with full status logs: the oldest status lines go, the newest stay, and the VM's parser takes it", () => {
    const ns = buildNamespace(gpus, builtinCatalog(), () => ({ status: fullStatus }));
    expect(snapshotBytes(ns)).toBeGreaterThan(LIMITS.snapshotBytes);
    const fitted = fitNamespace(ns);
    expect(fitted.statusBytesCut).toBeGreaterThan(0);
    expect(fitted.droppedModels).toEqual([]);
    const text = renderSnapshot(fitted.ns);
    expect(utf8(text)).toBeLessThanOrEqual(LIMITS.snapshotBytes);
    const parsed = parseSnapshot(new TextEncoder().encode(text));
    for (const n of parsed.nodes) expect(n.status.endsWith(statusLine("job-599", "OK", "completed") + "\n")).toBe(true);
  });

  test("5,000 models: publishes what fits, keeps the active one, and names every model left out", () => {
    const models = Array.from(
      { length: 5000 },
      (_, i) => ({ model_id: `m-${String(i).padStart(4, "0")}`, manifest_toml: `name = "m${i}"\n`.repeat(8) }),
    );
    const ns = buildNamespace(MOCK_GPUS, { source: "registry", active: "m-4999", models });
    const fitted = fitNamespace(ns);
    expect(utf8(renderSnapshot(fitted.ns))).toBeLessThanOrEqual(LIMITS.snapshotBytes);
    expect(fitted.droppedModels.length).toBeGreaterThan(0);
    expect(fitted.ns.models.length + fitted.droppedModels.length).toBe(5000);
    expect(fitted.ns.models.some((m) => m.model_id === "m-4999")).toBe(true);
    expect(fitted.droppedModels).not.toContain("m-4999");
    expect(parseSnapshot(new TextEncoder().encode(renderSnapshot(fitted.ns))).models.length).toBe(fitted.ns.models.length);
  });
});
