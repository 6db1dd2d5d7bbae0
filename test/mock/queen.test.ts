/** The mock Queen (mock/console/queen.ts, queen-export.ts): the root task's ingest rules and the export policy. */
import { describe, expect, test } from "bun:test";
import { ConsoleConnection, ConsoleState } from "../../mock/console/core.ts";
import { envelopeRun, fromBinaryLines, QUEEN } from "../../src/contract/queen.ts";
import { chunkRecord, envelope } from "../../src/telemetry/forward.ts";
import { decodeCbor } from "../../src/util/cbor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { parse as parseToml } from "smol-toml";
import { accepted } from "../telemetry/helpers.ts";
import { encodeRecord } from "../../src/telemetry/record.ts";

const BASE = "/queen/telemetry/edge-7";

function queen(state: ConsoleState, attach = "ATTACH queen ") {
  const c = new ConsoleConnection(state);
  c.handle("AUTH t");
  c.handle(attach);
  return c;
}

const open = (c: ConsoleConnection) => c.handle(`ECHO ${BASE}/ctl {"new":"segment","mime":"application/x-ndjson"}`).lines[0]!;
const latest = (c: ConsoleConnection) => c.handle(`CAT ${BASE}/latest`).lines.slice(1, -1);

/** Sends `text` as envelopes into `seg`, numbered from `from`; returns the acks. */
function push(c: ConsoleConnection, seg: string, text: string, from = 1): string[] {
  return chunkRecord(text, from).map((chunk, i) => c.handle(`ECHO ${BASE}/seg/${seg} ${envelope(from + i, chunk)}`).lines[0]!);
}

describe("the mock Queen's telemetry ingest (the root task's rules)", () => {
  test("ctl opens seg-000001, seg-000002, …; the ack does not name it, latest does; latest is read-only", () => {
    const state = new ConsoleState({ token: "t" });
    const c = queen(state);
    expect(open(c)).toBe(`OK ECHO path=${BASE}/ctl bytes=47`);
    expect(latest(c)).toEqual(["seg-000001"]);
    open(c);
    expect(latest(c)).toEqual(["seg-000002"]);
    expect(c.handle(`ECHO ${BASE}/latest seg-000009`).lines[0]).toBe(
      `ERR ECHO reason=policy detail=denied path=${BASE}/latest error=EPERM`,
    );
    expect(c.handle(`ECHO ${BASE}/ctl {"new":"stream"}`).lines[0]).toMatch(/^ERR ECHO reason=policy detail=invalid-payload/);
    expect(c.handle(`LS ${BASE}`).lines).toEqual([`OK LS path=${BASE} entries=3`, "ctl", "seg", "latest", "END"]);
    expect(c.handle(`LS ${BASE}/seg`).lines).toEqual([`OK LS path=${BASE}/seg entries=2`, "seg-000001", "seg-000002", "END"]);
    expect(c.handle("LS /queen/telemetry").lines).toEqual(["OK LS path=/queen/telemetry entries=1", "edge-7", "END"]);
  });

  test("a segment stores what it is sent, a repeat included: nothing is dropped as a duplicate", () => {
    const state = new ConsoleState({ token: "t" });
    const c = queen(state);
    open(c);
    const line = envelope(1, "{}\n");
    expect(c.handle(`ECHO ${BASE}/seg/seg-000001 ${line}`).lines[0]).toBe(`OK ECHO path=${BASE}/seg/seg-000001 bytes=${line.length}`);
    c.handle(`ECHO ${BASE}/seg/seg-000001 ${line}`);
    c.handle(`ECHO ${BASE}/seg/seg-000001 not even json`);
    expect(c.handle(`CAT ${BASE}/seg/seg-000001`).lines.slice(1, -1)).toEqual([line, line, "not even json"]);
    // The reader takes the run only: the repeat ends it.
    expect(envelopeRun([line, line]).count).toBe(1);
  });

  test("only the queen writes; a missing segment is invalid-path", () => {
    const state = new ConsoleState({ token: "t" });
    const worker = queen(state, "ATTACH worker-gpu tkt");
    expect(worker.handle(`ECHO ${BASE}/ctl {"new":"segment"}`).lines[0]).toBe(
      `ERR ECHO reason=policy detail=denied path=${BASE}/ctl error=EPERM`,
    );
    const c = queen(state);
    expect(c.handle(`ECHO ${BASE}/seg/seg-000001 x`).lines[0]).toBe(
      `ERR ECHO reason=policy detail=invalid-path path=${BASE}/seg/seg-000001 error=invalid path`,
    );
    expect(c.handle(`CAT ${BASE}/latest`).lines[0]).toMatch(/^ERR CAT reason=policy detail=invalid-path/);
  });

  test("quotas: a full segment refuses buffer-full; evict-oldest drops the oldest other segments; refuse refuses", () => {
    const state = new ConsoleState({ token: "t" });
    state.queen.quota = { maxSegments: 2, segmentBytes: 300, totalBytes: 500, policy: "evict-oldest" };
    const c = queen(state);
    open(c);
    const line = "x".repeat(99); // 100 bytes with its newline
    for (let i = 0; i < 3; i++) expect(c.handle(`ECHO ${BASE}/seg/seg-000001 ${line}`).lines[0]).toMatch(/^OK ECHO/);
    expect(c.handle(`ECHO ${BASE}/seg/seg-000001 ${line}`).lines[0]).toBe(
      `ERR ECHO reason=quota detail=buffer-full path=${BASE}/seg/seg-000001 error=buffer full`,
    );
    open(c);
    for (let i = 0; i < 2; i++) c.handle(`ECHO ${BASE}/seg/seg-000002 ${line}`);
    // 500 in all: the next line evicts seg-000001 (never the one being written).
    expect(c.handle(`ECHO ${BASE}/seg/seg-000002 ${line}`).lines[0]).toMatch(/^OK ECHO/);
    expect(c.handle(`LS ${BASE}/seg`).lines.slice(1, -1)).toEqual(["seg-000002"]);
    open(c);
    open(c); // a third segment evicts the oldest
    expect(c.handle(`LS ${BASE}/seg`).lines.slice(1, -1)).toEqual(["seg-000003", "seg-000004"]);
    state.queen.quota.policy = "refuse";
    expect(open(c)).toBe(`ERR ECHO reason=quota detail=buffer-full path=${BASE}/ctl error=buffer full`);
  });

  test("cohesix-py's telemetry_push, as it goes over the console: LS seg, ctl, CAT latest, one ECHO per envelope", () => {
    const state = new ConsoleState({ token: "t" });
    const c = queen(state);
    const dev = "/queen/telemetry/jetson-42";
    // A device the Queen has not seen: the listing is refused (the client takes that as no segments).
    expect(c.handle(`LS ${dev}/seg`).lines[0]).toBe(`ERR LS reason=policy detail=invalid-path path=${dev}/seg error=invalid path`);
    expect(c.handle(`ECHO ${dev}/ctl {"new":"segment","mime":"text/plain"}`).lines).toEqual([`OK ECHO path=${dev}/ctl bytes=37`]);
    expect(c.handle(`CAT ${dev}/latest`).lines).toEqual([`OK CAT path=${dev}/latest data=seg-000001`, "seg-000001", "END"]);
    const env = '{"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"text/plain","payload":"hello\\n"}';
    expect(c.handle(`ECHO ${dev}/seg/seg-000001 ${env}`).lines).toEqual([`OK ECHO path=${dev}/seg/seg-000001 bytes=${env.length}`]);
    expect(state.queen.delivered("jetson-42")).toBe("hello\n");
    expect(state.export.holding).toBe(0); // text/plain is not telemetry records
  });

  test("one CAT answers 64 lines at most; past that the read is refused buffer-full", () => {
    const state = new ConsoleState({ token: "t" });
    const c = queen(state);
    open(c);
    for (let i = 0; i < QUEEN.catLines; i++) c.handle(`ECHO ${BASE}/seg/seg-000001 l${i}`);
    expect(c.handle(`CAT ${BASE}/seg/seg-000001`).lines.length).toBe(QUEEN.catLines + 2);
    c.handle(`ECHO ${BASE}/seg/seg-000001 one-more`);
    expect(c.handle(`CAT ${BASE}/seg/seg-000001`).lines).toEqual([
      `ERR CAT reason=quota detail=buffer-full path=${BASE}/seg/seg-000001 error=buffer full`,
    ]);
  });
});

describe("the mock Queen's export policy", () => {
  const records = (n: number, from = 0) => Array.from({ length: n }, (_, i) => encodeRecord(accepted(from + i)) + "\n").join("");
  /** A console on a clock the test moves, its export policy, and a queen session with seg-000001 open. */
  const exporting = (minRecords: number, windowMs: number) => {
    const clock = { now: 1_765_000_000_000 };
    const state = new ConsoleState({ token: "t", now: () => clock.now });
    state.export.policy = { minRecords, windowMs };
    const c = queen(state);
    open(c);
    return { clock, state, c };
  };

  test("exports a job once enough records of one base model arrived, with the three files in their formats", () => {
    const { clock, state, c } = exporting(5, 60_000);
    push(c, "seg-000001", records(4));
    expect(state.export.jobs.size).toBe(0);
    expect(c.handle("LS /queen/export/lora_jobs").lines).toEqual(["OK LS path=/queen/export/lora_jobs entries=0", "END"]);
    clock.now += 1000;
    push(c, "seg-000001", records(1, 4), 1 + c.handle(`CAT ${BASE}/seg/seg-000001`).lines.length - 2);
    expect([...state.export.jobs.keys()]).toEqual(["job_0001"]);
    expect(c.handle("LS /queen/export/lora_jobs/job_0001").lines.slice(1, -1)).toEqual([...QUEEN.exportFiles]);
    const cat = (f: string) => c.handle(`CAT /queen/export/lora_jobs/job_0001/${f}`).lines.slice(1, -1);
    const telemetry = fromBinaryLines(cat("telemetry.cbor"));
    if (typeof telemetry === "string") throw new Error(telemetry);
    const frames = decodeCbor(telemetry) as Record<string, unknown>[];
    expect(frames.map((f) => (f.payload as { token_count: number }).token_count)).toEqual([100, 101, 102, 103, 104]);
    expect(frames[0]).toMatchObject({ schema: "telemetry-frame/v1", worker_id: "edge-7", role: "worker-gpu", seq: 1 });
    expect(cat("base_model.ref")).toEqual(["m"]);
    const policy = parseToml(cat("policy.toml").join("\n")) as Record<string, unknown> & Record<string, Record<string, unknown>>;
    expect(policy.policy).toMatchObject({ min_records: 5, window_s: 60 });
    expect(policy).toMatchObject({ job_id: "job_0001", base_model: "m" });
    expect(policy.telemetry).toMatchObject({ records: 5, devices: ["edge-7"], sha256: sha256Hex(telemetry), bytes: telemetry.length });
    // The span of the records' own time windows (what models import --from-export records).
    expect(policy.window).toEqual({ start_ms: 1_700_000_000_000, end_ms: 1_700_000_004_999 });
    expect(c.handle("ECHO /queen/export/lora_jobs/job_0001/policy.toml x").lines[0]).toMatch(/^ERR ECHO reason=policy detail=denied/);
  });

  test("records older than the window are dropped, and text/plain segments are not records", () => {
    const { clock, state, c } = exporting(3, 10_000);
    push(c, "seg-000001", records(2));
    clock.now += 20_000;
    c.handle(`ECHO ${BASE}/ctl {"new":"segment","mime":"text/plain"}`);
    c.handle(`ECHO ${BASE}/seg/seg-000002 {"schema":"cohsh-telemetry-push/v1","seq":1,"mime":"text/plain","payload":"a\\nb\\nc\\n"}`);
    open(c);
    push(c, "seg-000003", records(2, 2));
    expect(state.export.jobs.size).toBe(0);
    expect(state.export.holding).toBe(2);
    push(c, "seg-000003", records(1, 4), 1 + c.handle(`CAT ${BASE}/seg/seg-000003`).lines.length - 2);
    expect(state.export.jobs.get("job_0001")?.records).toBe(3);
  });

  test("a job's telemetry is cut to what one CAT carries; the rest waits for the next job", () => {
    const state = new ConsoleState({ token: "t" });
    state.export.policy = { minRecords: 60, windowMs: 60_000 };
    const c = queen(state);
    let seq = 1;
    for (let i = 0; i < 60; i += 6) {
      if (i % 12 === 0) {
        open(c);
        seq = 1;
      }
      seq += push(c, latest(c)[0]!, records(6, i), seq).length;
    }
    const job = state.export.jobs.get("job_0001")!;
    expect(job.records).toBeLessThan(60);
    expect(state.export.holding).toBe(60 - job.records);
    expect(c.handle("CAT /queen/export/lora_jobs/job_0001/telemetry.cbor").lines[0]).toMatch(/^OK CAT/);
  });
});
