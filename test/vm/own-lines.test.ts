/**
 * The bridge never takes its own lines in the VM's node files for lines the VM wrote: under lease
 * churn its ctl echoes are compacted while the VM still holds them, and an append of theirs
 * may be refused, yet a read-back between that compaction and the snapshot's landing must hand
 * none of them over (applied, they would end or grant leases nobody asked for).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { FakeClock, memoryLogger, until } from "../helpers.ts";
import { publishingServe, ticking } from "./helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let daemon: Bridge | null = null;

beforeEach(async () => (mock = await startMockConsole(runtime, { token: "tok" })));
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await mock.close();
});

function vmWorker() {
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH tok");
  c.handle("ATTACH worker-gpu ticket");
  return (path: string, line: string) => c.handle(`ECHO ${path} ${line}`).lines[0]!;
}

describe("the bridge's own lines in the VM", () => {
  test("compacted while an append of theirs was refused, they are never applied as the VM's control lines", async () => {
    const clock = new FakeClock(); // no time passes in a publish: the read-back before `end` always runs
    const options = publishingServe(mock.port, "--readback-ms", "60000", "--ack-timeout-ms", "600000");
    const { log, lines } = memoryLogger();
    daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { noJournal: true, clock, minSnapshotMs: 1000 });
    await until(() => mock.state.publishes === 1, 5000, "the first publish");
    const echo = vmWorker();
    const ctl = () => mock.state.read("/gpu/GPU-1/ctl") ?? "";
    // PRIORITY on a GPU without leases only writes the line: the bridge's own ctl echo.
    const priority = (n: number) => daemon!.host.control("GPU-1", `PRIORITY ${n}`);
    for (let n = 0; n < 60; n++) priority(n);
    await until(() => ctl().includes("PRIORITY 59\n"), 5000, "the bridge's appends");
    // Right before the VM takes the bridge's next append, a VM client fills the log to its
    // last byte: the append is refused, and the bridge's lines wait for a compacted snapshot.
    mock.state.faults.beforeLine = (_conn, line) => {
      if (line !== "ECHO /gpu/GPU-1/ctl PRIORITY 60") return;
      while (echo("/gpu/GPU-1/ctl", "v".repeat(100)).startsWith("OK"));
      while (echo("/gpu/GPU-1/ctl", "v").startsWith("OK"));
    };
    priority(60);
    await until(() => daemon!.vm!.stats.refusedAppends === 1, 5000, "the refused append");
    // More than the compaction keeps arrive meanwhile: every line the VM holds of the bridge's
    // is compacted away before the snapshot that drops them lands.
    for (let n = 61; n < 121; n++) priority(n);
    const phantom = (l: string) => /VM wrote \/gpu\/GPU-1\/ctl: PRIORITY|applied the VM's control line/.test(l);
    await ticking(clock, () => ctl().includes("PRIORITY 120\n") || lines.some(phantom), 5000, "the compacted snapshot");
    expect(lines.filter(phantom)).toEqual([]);
    expect(daemon.vm!.stats.compactions).toBeGreaterThan(0);
    // The VM's own lines were read back all the same.
    expect(lines.some((l) => l.includes(`VM wrote /gpu/GPU-1/ctl: ${"v".repeat(100)}`))).toBe(true);
  });
});
