import { describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { ConsoleConnection, ConsoleState, CTL } from "../../mock/console/core.ts";
import { QUEEN_CTL } from "../../mock/console/vm.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot, publishLines } from "../../src/contract/snapshot.ts";
import { byteLength } from "../../src/util/bytes.ts";

const ns = buildNamespace(MOCK_GPUS, builtinCatalog());

function session(state: ConsoleState, attach = "ATTACH queen ") {
  const c = new ConsoleConnection(state);
  c.handle("AUTH t");
  c.handle(attach);
  return c;
}

/** A console with the mock snapshot landed, and a queen session on it. */
function landed() {
  const state = new ConsoleState({ token: "t" });
  const queen = session(state);
  for (const l of publishLines(makeSnapshot(ns))) queen.handle(`ECHO ${CTL} ${l}`);
  expect(state.publishes).toBe(1);
  return { state, queen };
}

const SPAWN = '{"spawn":"gpu","lease":{"gpu_id":"GPU-0","mem_mb":4096,"streams":1,"ttl_s":120,"priority":1}}';

describe("the mock VM (docs/protocol.md section 12)", () => {
  test("a Queen spawn appends the ACTIVE lease line itself and names worker-<n>; kill writes nothing to /gpu", () => {
    const { state, queen } = landed();
    expect(queen.handle(`ECHO ${QUEEN_CTL} ${SPAWN}`).lines).toEqual([`OK ECHO path=${QUEEN_CTL} bytes=${byteLength(SPAWN)}`]);
    const lease = state.read("/gpu/GPU-0/lease")!;
    expect(JSON.parse(lease.trim())).toEqual({
      schema: "gpu-lease/v1",
      state: "ACTIVE",
      gpu_id: "GPU-0",
      worker_id: "worker-1",
      mem_mb: 4096,
      streams: 1,
      ttl_s: 120,
      priority: 1,
    });
    // priority is optional (default 0); workers count from 1 per boot
    queen.handle(`ECHO ${QUEEN_CTL} {"spawn":"gpu","lease":{"gpu_id":"GPU-1","mem_mb":1,"streams":1,"ttl_s":5}}`);
    expect(JSON.parse(state.read("/gpu/GPU-1/lease")!)).toMatchObject({ worker_id: "worker-2", priority: 0 });
    const before = new Map(state.files);
    expect(queen.handle(`ECHO ${QUEEN_CTL} {"kill":"worker-1"}`).lines[0]).toStartWith("OK ECHO");
    expect(state.files).toEqual(before);
    expect([...state.vm.workers.keys()]).toEqual(["worker-2"]);
    expect(queen.handle(`ECHO ${QUEEN_CTL} {"kill":"worker-1"}`).lines[0]).toStartWith("ERR ECHO reason=not-found");
  });

  test("a spawn is checked: fields >= 1, an existing GPU, queen only", () => {
    const { state, queen } = landed();
    const bad = (lease: string) => queen.handle(`ECHO ${QUEEN_CTL} {"spawn":"gpu","lease":${lease}}`).lines[0]!;
    expect(bad('{"gpu_id":"GPU-0","mem_mb":0,"streams":1,"ttl_s":1}')).toContain("error=lease mem_mb must be >= 1");
    expect(bad('{"gpu_id":"GPU-9","mem_mb":1,"streams":1,"ttl_s":1}')).toBe(
      `ERR ECHO reason=not-found path=${QUEEN_CTL} error=unknown gpu GPU-9`,
    );
    const worker = session(state, "ATTACH worker-gpu ticket-1");
    expect(worker.handle(`ECHO ${QUEEN_CTL} ${SPAWN}`).lines[0]).toBe(`ERR ECHO reason=policy detail=queen-only path=${QUEEN_CTL}`);
    expect(state.read("/gpu/GPU-0/lease")).toBe("");
  });

  test("node appends: ctl takes any text up to 1024 bytes; lease and status need a JSON object; a refusal changes nothing", () => {
    const { state, queen } = landed();
    const worker = session(state, "ATTACH worker-gpu ticket-1");
    expect(worker.handle("ECHO /gpu/GPU-0/ctl RELEASE worker-1 done").lines[0]).toBe("OK ECHO path=/gpu/GPU-0/ctl bytes=21");
    expect(state.read("/gpu/GPU-0/ctl")).toBe("LEASE GPU-0\nRELEASE worker-1 done\n");
    const err = queen.handle("ECHO /gpu/GPU-0/status not json").lines[0]!;
    expect(err).toBe("ERR ECHO reason=policy detail=invalid-payload path=/gpu/GPU-0/status error=payload must be a JSON object");
    expect(state.read("/gpu/GPU-0/status")).toBe("");
    // Fill ctl to its cap: the line that would pass 1024 bytes is refused, the file is untouched.
    const line = "x".repeat(99);
    let ok = 0;
    while (queen.handle(`ECHO /gpu/GPU-0/ctl ${line}`).lines[0]!.startsWith("OK")) ok++;
    const full = state.read("/gpu/GPU-0/ctl")!;
    expect(byteLength(full)).toBeLessThanOrEqual(1024);
    expect(byteLength(full) + 100).toBeGreaterThan(1024);
    expect(ok).toBe(Math.floor((1024 - 34) / 100));
    expect(queen.handle("ECHO /gpu/GPU-0/ctl y").lines[0]).toBe("OK ECHO path=/gpu/GPU-0/ctl bytes=1");
    expect(queen.handle(`ECHO /gpu/GPU-0/ctl ${line}`).lines[0]).toContain("error=ctl log full (1024 bytes)");
    expect(queen.handle("ECHO /gpu/GPU-0/info {}").lines[0]).toBe("ERR ECHO reason=permission detail=read-only path=/gpu/GPU-0/info");
    const lease =
      '{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-1","worker_id":"w","mem_mb":1,"streams":1,"ttl_s":1,"priority":0}';
    for (let i = 0; i < 8; i++) queen.handle(`ECHO /gpu/GPU-1/lease ${lease}`);
    expect(state.read("/gpu/GPU-1/lease")!.split("\n").length - 1).toBe(Math.floor(1024 / (byteLength(lease) + 1)));
  });

  test("CAT acks carry the last line as data, cut to keep the ack within 128 bytes; LS lists bare names in the VM's order", () => {
    const { state, queen } = landed();
    queen.handle(`ECHO ${QUEEN_CTL} ${SPAWN}`);
    const cat = queen.handle("CAT /gpu/GPU-0/lease").lines;
    expect(byteLength(cat[0]!)).toBe(128);
    expect(cat[0]).toStartWith('OK CAT path=/gpu/GPU-0/lease data={"schema":"gpu-lease/v1"');
    expect(cat.slice(1)).toEqual([state.read("/gpu/GPU-0/lease")!.trim(), "END"]);
    expect(queen.handle("CAT /gpu/GPU-0/status").lines).toEqual(["OK CAT path=/gpu/GPU-0/status data=", "END"]);
    expect(queen.handle("LS /gpu").lines).toEqual(["OK LS path=/gpu entries=5", "bridge", "models", "telemetry", "GPU-0", "GPU-1", "END"]);
    expect(queen.handle("LS /gpu/bridge").lines.slice(1, -1)).toEqual(["ctl", "status"]);
    expect(queen.handle("LS /gpu/nope").lines).toEqual(["ERR LS reason=not-found path=/gpu/nope"]);
    const fresh = session(new ConsoleState({ token: "t" }));
    expect(fresh.handle("LS /gpu").lines).toEqual(["OK LS path=/gpu entries=1", "bridge", "END"]);
  });

  test("a snapshot replaces every node's files whole: what the VM appended is gone unless the snapshot carries it", () => {
    const { state, queen } = landed();
    state.vm.jobFiles = true;
    for (const l of publishLines(makeSnapshot(ns))) queen.handle(`ECHO ${CTL} ${l}`);
    queen.handle(`ECHO ${QUEEN_CTL} ${SPAWN}`);
    queen.handle('ECHO /gpu/GPU-0/status {"schema":"gpu-breadcrumb/v1","event":"START","command":"x","status":"RUNNING"}');
    queen.handle('ECHO /gpu/GPU-0/job {"job":"job-1"}');
    expect(state.read("/gpu/GPU-0/job")).toBe('{"job":"job-1"}\n');
    for (const l of publishLines(makeSnapshot(ns))) queen.handle(`ECHO ${CTL} ${l}`);
    expect(state.read("/gpu/GPU-0/lease")).toBe("");
    expect(state.read("/gpu/GPU-0/status")).toBe("");
    expect(state.read("/gpu/GPU-0/job")).toBe("");
    expect(state.vm.workers.size).toBe(1); // the worker lives on; only its lease line is gone
  });

  test("worker-gpu sessions need a ticket; several sessions share one tree", () => {
    const { state } = landed();
    const c = new ConsoleConnection(state);
    c.handle("AUTH t");
    expect(c.handle("ATTACH worker-gpu ").lines).toEqual(["ERR ATTACH reason=policy detail=ticket-required"]);
    expect(c.handle("ECHO /gpu/GPU-0/ctl x").lines[0]).toBe("ERR ECHO reason=policy detail=not-attached path=/gpu/GPU-0/ctl");
    const w = session(state, "ATTACH worker-gpu t1");
    w.handle('ECHO /gpu/GPU-1/status {"a":1}');
    expect(session(state).handle("CAT /gpu/GPU-1/status").lines).toEqual(['OK CAT path=/gpu/GPU-1/status data={"a":1}', '{"a":1}', "END"]);
  });
});
