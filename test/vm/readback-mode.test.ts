/**
 * A console that cannot read back (an older or minimal one: `CAT` and `LS` answered
 * `ERR <VERB> reason=unsupported`) still gets snapshots, as from the reference bridge; the loss
 * is told once, the mode is served by `GET /v1/bridge`, and every new connection probes again.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { type MockConsole, startMockConsole } from "../../mock/console/server.ts";
import { ConsoleConnection } from "../../mock/console/core.ts";
import { createApp } from "../../src/api/app.ts";
import { type Bridge, createBridge } from "../../src/app/bridge.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
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

const cats = () => mock.state.linesReceived.filter((l) => l.startsWith("CAT ")).length;
const warnings = (lines: string[]) => lines.filter((l) => l.includes("WARN") && l.includes("cannot read the VM's files back"));

/** Makes the mock hang up at the daemon's next frame, which a ctl line appended now sends. */
async function reconnect(d: Bridge, n: number) {
  const before = mock.state.connections;
  mock.state.faults.closeAfterFrames = 1;
  d.host.control("GPU-0", `PRIORITY ${n}`);
  await until(
    () => mock.state.connections > before && d.publisher!.stats.state === "connected" && mock.state.publishes >= n,
    5000,
    "a new connection's publish",
  );
}

describe("read-back against an older console, and VM text that looks like a line break", () => {
  test("gets its snapshot; the loss is warned once; GET /v1/bridge shows the mode; each connection probes again", async () => {
    mock.state.faults.noReadback = true;
    const { log, lines } = memoryLogger();
    const options = publishingServe(mock.port, "--readback-ms", "50");
    daemon = await createBridge(options, { runtime, log, backend: mockBackend() }, {
      noJournal: true,
      backoff: { baseMs: 10, capMs: 20 },
    });
    await until(() => mock.state.publishes === 1, 5000, "the first publish");
    expect(cats()).toBe(1); // one probe, then no read-back on this connection (its idle poll included)
    const app = createApp({ token: "api", log, bridge: daemon });
    const bridgeJson = async () => (await app.request("/v1/bridge", { headers: { authorization: "Bearer api" } })).json();
    expect(await bridgeJson()).toMatchObject({ state: "connected", vm_readback: "unsupported" });
    expect(warnings(lines)).toHaveLength(1);
    expect(warnings(lines)[0]).toContain("ERR CAT reason=unsupported");

    // Still an older console after a reconnect: probed again (one CAT), not warned again.
    await reconnect(daemon, 2);
    expect(cats()).toBe(2);
    expect(warnings(lines)).toHaveLength(1);
    expect(daemon.console.vmReadback!()).toBe("unsupported");

    // The console learnt CAT: read-back resumes on the next connection, and the VM's lines are kept.
    mock.state.faults.noReadback = false;
    await reconnect(daemon, 3);
    await until(() => daemon!.console.vmReadback!() === "supported", 5000, "read-back");
    expect(lines.some((l) => l.includes("reads the VM's files back again"))).toBe(true);
    const vm = new ConsoleConnection(mock.state);
    vm.handle("AUTH tok");
    vm.handle("ATTACH worker-gpu t");
    expect(vm.handle("ECHO /gpu/GPU-1/ctl hello from the VM").lines[0]).toStartWith("OK ECHO");
    await until(() => lines.some((l) => l.includes("VM wrote /gpu/GPU-1/ctl: hello from the VM")), 5000, "the VM's line read back");
    expect(warnings(lines)).toHaveLength(1);
  });

  test("a VM line holding a line separator, last in its file, is read back (its CAT ack is an ack, not noise)", async () => {
    const { log, lines } = memoryLogger();
    daemon = await createBridge(publishingServe(mock.port, "--readback-ms", "50"), { runtime, log, backend: mockBackend() }, {
      noJournal: true,
    });
    await until(() => mock.state.publishes === 1, 5000, "the first publish");
    const vm = new ConsoleConnection(mock.state);
    vm.handle("AUTH tok");
    vm.handle("ATTACH worker-gpu t");
    expect(vm.handle("ECHO /gpu/GPU-1/ctl note\u2028RELEASE worker-9 x").lines[0]).toStartWith("OK ECHO");
    await until(() => lines.some((l) => l.includes("VM wrote /gpu/GPU-1/ctl: note\\u2028RELEASE worker-9 x")), 5000, "the read-back");
    expect(daemon.publisher!.stats.failures).toBe(0);
  });

  test("ERR CAT reason=unknown-command, policy or permission is the same answer; not-found or a delay_ms is not", async () => {
    const { lacksVerb } = await import("../../src/console/readback.ts");
    const { ConsoleError } = await import("../../src/console/errors.ts");
    const { parseAck } = await import("../../src/contract/ack.ts");
    const refusal = (line: string) => new ConsoleError("rejected", line, { ack: parseAck(line)! });
    expect(lacksVerb(refusal("ERR CAT reason=unsupported"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=unknown-command"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=not-found path=/gpu/x"), "CAT")).toBe(false);
    expect(lacksVerb(refusal("ERR CAT reason=busy delay_ms=10"), "CAT")).toBe(false);
    expect(lacksVerb(refusal("ERR CAT reason=policy detail=denied path=/gpu/GPU-0/ctl"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=permission path=/gpu/GPU-0/ctl"), "CAT")).toBe(true);
    expect(lacksVerb(refusal("ERR CAT reason=policy detail=throttled delay_ms=5"), "CAT")).toBe(false);
    expect(lacksVerb(refusal("ERR LS reason=unsupported"), "CAT")).toBe(false);
    expect(lacksVerb(new Error("ERR CAT reason=unsupported"), "CAT")).toBe(false);
  });
});
