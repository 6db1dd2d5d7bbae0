/** Read-back and appends through the daemon, against the faithful mock VM (docs/protocol.md section 12). */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { statusLine } from "../../src/lease/records.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { byteLength } from "../../src/util/bytes.ts";
import { publishingServe } from "./helpers.ts";
import { memoryLogger, until } from "../helpers.ts";

const runtime = bunRuntime();
let mock: MockConsole;
let daemon: Bridge | null = null;

beforeEach(async () => (mock = await startMockConsole(runtime, { token: "tok" })));
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  await mock.close();
});

async function bridge(readbackMs = 50) {
  const options = publishingServe(mock.port, "--readback-ms", String(readbackMs));
  const { log, lines } = memoryLogger();
  daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, { noJournal: true });
  await until(() => mock.state.publishes === 1, 5000, "the first publish");
  return { daemon, lines };
}

/** A worker-gpu session of the VM's own (in process: the same tree the bridge talks to). */
function vmWorker() {
  const c = new ConsoleConnection(mock.state);
  c.handle("AUTH tok");
  expect(c.handle("ATTACH worker-gpu ticket-1").lines).toEqual(["OK ATTACH role=worker-gpu"]);
  return (path: string, line: string) => c.handle(`ECHO ${path} ${line}`).lines[0]!;
}

const CRUMB = '{"schema":"gpu-breadcrumb/v1","event":"START","command":"python train.py","status":"RUNNING"}';

describe("VM read-back and appends", () => {
  test("a republish keeps what the VM's clients wrote; the bridge's own short lines go as single appends", async () => {
    const { daemon } = await bridge(60_000); // no idle poll: the read-back before the snapshot must do it
    const echo = vmWorker();
    expect(echo("/gpu/GPU-0/status", CRUMB)).toStartWith("OK ECHO");
    // Its ACTIVE record is over the 128-byte echo payload: only a snapshot can carry it.
    daemon.host.control("GPU-0", "LEASE worker-with-a-long-name mem=1024 streams=1 priority=1");
    await until(() => mock.state.read("/gpu/GPU-0/lease")?.includes("worker-with-a-long-name") === true, 3000, "the lease by snapshot");
    expect(mock.state.publishes).toBe(2);
    expect(mock.state.read("/gpu/GPU-0/status")).toBe(CRUMB + "\n");
    daemon.host.logsOf("GPU-0").appendStatus(statusLine("job-1", "QUEUED", "accepted"));
    await until(() => mock.state.read("/gpu/GPU-0/status")?.includes("job-1") === true, 3000, "the status append");
    expect(mock.state.publishes).toBe(2);
    expect(mock.state.read("/gpu/GPU-0/status")).toBe(`${CRUMB}\n{"job":"job-1","state":"QUEUED","detail":"accepted"}\n`);
    expect(mock.state.linesReceived.at(-1)).toBe('ECHO /gpu/GPU-0/status {"job":"job-1","state":"QUEUED","detail":"accepted"}');
  });

  test("the idle poll reads the VM's new lines within its period, and counts what it costs", async () => {
    const { daemon, lines } = await bridge(50);
    vmWorker()("/gpu/GPU-1/ctl", "hello from the VM");
    await until(() => lines.some((l) => l.includes("VM wrote /gpu/GPU-1/ctl: hello from the VM")), 3000, "the read-back");
    const s = daemon.vm!.stats;
    expect(s.vmLines).toBe(1);
    expect(s.readbacks).toBeGreaterThan(1);
    expect(s.catFrames).toBeGreaterThan(s.readbacks * 6); // 2 GPUs x 3 files (+ job), each a request, an ack and END at least
    await Bun.sleep(200);
    expect(lines.filter((l) => l.includes("VM wrote /gpu/GPU-1/ctl: hello from the VM")).length).toBe(1); // handed over once
  });

  test("a VM log at its cap: the refused append compacts the file, oldest lines first, leaving headroom and the newest lines", async () => {
    const { daemon } = await bridge(60_000);
    const echo = vmWorker();
    let n = 0;
    while (echo("/gpu/GPU-1/ctl", `note ${String(n).padStart(3, "0")} ${"x".repeat(80)}`).startsWith("OK")) n++;
    while (echo("/gpu/GPU-1/ctl", "y").startsWith("OK")); // to the last byte
    expect(n).toBeGreaterThan(8);
    daemon.host.control("GPU-1", "PRIORITY 9");
    await until(() => mock.state.read("/gpu/GPU-1/ctl")?.includes("PRIORITY 9") === true, 3000, "the compacted republish");
    const ctl = mock.state.read("/gpu/GPU-1/ctl")!;
    expect(byteLength(ctl)).toBeLessThanOrEqual(512);
    const kept = ctl.trim().split("\n");
    expect(kept[0]).toBe("LEASE GPU-1"); // the seed stays
    expect(kept.at(-1)).toBe("PRIORITY 9");
    expect(kept.at(-2)).toBe("y"); // the newest VM lines are kept, the oldest dropped
    expect(ctl).toContain(`note ${String(n - 1).padStart(3, "0")}`);
    expect(ctl).not.toContain("note 000");
    expect(daemon.vm!.stats.compactions).toBe(1);
    // The VM's clients have room again.
    expect(echo("/gpu/GPU-1/ctl", "x".repeat(100))).toStartWith("OK ECHO");
  });
});
