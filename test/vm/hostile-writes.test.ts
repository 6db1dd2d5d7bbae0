/**
 * Everything the bridge writes into the VM stays one line within its file's cap, whatever text
 * it came from, and VM lease records are read strictly. Hostile values (newlines, CR, NUL,
 * control and C1 characters, bidi and invisible characters, lone surrogates, over-long text)
 * go through every writer and every path that writes VM-visible text.
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { ctlText, ctlToken, quoteForVm } from "../../src/contract/escape.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import type { Runner } from "../../src/job/runner.ts";
import { parseControl } from "../../src/lease/control.ts";
import { ctlLeaseLine, ctlPriorityLine, ctlReleaseLine, leaseRecord, LINE_BYTES, statusLine } from "../../src/lease/records.ts";
import type { Lease } from "../../src/lease/types.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { byteLength } from "../../src/util/bytes.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const HOSTILE = [
  "a\nRELEASE victim done",
  "a\rRESET",
  "a\r\nRESET",
  "nul\u0000byte",
  "esc\u001b[31mred",
  "c1\u009bcsi\u0085nel",
  "del\u007f",
  "bidi\u202eevil\u202c\u2066iso\u2069",
  "sep\u2028line\u2029para",
  "zero\u200bwidth\ufeffbom",
  "lone\ud800surrogate\udfff",
  "emoji 🚀 é",
  'quote" back\\slash',
  "two words",
  "",
  "x".repeat(10_000),
  "\n".repeat(300),
  "🚀".repeat(100),
];

/** Characters no line the bridge writes may hold raw. */
const RAW_UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function oneLineWithin(line: string, cap: number): void {
  expect(line).not.toMatch(RAW_UNSAFE);
  expect(byteLength(line)).toBeLessThanOrEqual(cap);
}

const lease = (worker: string, gpu = "GPU-0"): Lease => ({
  id: "l",
  gpu_id: gpu,
  worker_id: worker,
  mem_mb: 1,
  streams: 1,
  ttl_s: 1,
  priority: 0,
  state: "ACTIVE",
  granted_at: 0,
  expires_at: 0,
});

describe("the writers of VM lines", () => {
  test("hold every hostile value to one line within the file's cap", () => {
    let cases = 0;
    for (const h of HOSTILE) {
      for (const line of [leaseRecord(lease(h, h), "ACTIVE"), leaseRecord(lease(h), "RELEASED")]) {
        oneLineWithin(line, LINE_BYTES.lease);
        expect(JSON.parse(line).schema).toBe("gpu-lease/v1");
        cases++;
      }
      for (const line of [ctlLeaseLine(lease(h)), ctlReleaseLine(h, h), ctlReleaseLine(h, h, 128), ctlPriorityLine(7, h)]) {
        oneLineWithin(line, line === ctlReleaseLine(h, h, 128) ? 128 : LINE_BYTES.ctl);
        expect(line).toMatch(/^[\x20-\x7e]+$/);
        // Whoever splits it on spaces finds the hostile value as one word, which is never a safe id unless it was one.
        const words = parseControl(line);
        if (words.verb === "RELEASE" || words.verb === "LEASE") expect(words.worker).toBe(ctlToken(h, 72));
        cases++;
      }
      for (const cap of [LINE_BYTES.status, 128]) {
        const line = statusLine(h, "ERR", h, cap);
        oneLineWithin(line, cap);
        const parsed = JSON.parse(line);
        expect(parsed.state).toBe("ERR");
        if (!parsed.job.endsWith("…")) expect(parsed.job).toBe(h);
        cases++;
      }
    }
    expect(cases).toBe(HOSTILE.length * 8);
  });

  test("escape only what they must: a JSON reader gets the text back; a cut ends in an ellipsis that no id holds", () => {
    for (const h of HOSTILE.filter((t) => t.length < 40)) {
      expect(JSON.parse(quoteForVm(h))).toBe(h.isWellFormed() ? h : JSON.parse(quoteForVm(h)));
    }
    expect(quoteForVm("GPU-0 ✓")).toBe('"GPU-0 ✓"'); // non-ASCII stays, as the contract's rule says
    expect(ctlToken("worker-1")).toBe("worker-1");
    expect(ctlToken("a\nRELEASE")).toBe("a\\u000aRELEASE");
    expect(ctlToken("w".repeat(100), 72)).toBe("w".repeat(66) + "\\u2026");
    expect(ctlText("out of memory: 1 MiB")).toBe("out of memory: 1 MiB");
    expect(quoteForVm("x".repeat(50), 12)).toBe('"xxxxxxx…"');
  });
});

describe("the paths that write VM lines from input", () => {
  const never: Runner = { run: () => new Promise(() => {}) };
  let host: HostState;
  let log: ReturnType<typeof memoryLogger>;
  let wrote: { file: "ctl" | "lease" | "status"; text: string }[];

  beforeEach(() => {
    log = memoryLogger();
    host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: never,
      runnerKind: "cpu",
      log: log.log,
      onChange: () => {},
      clock: new FakeClock(),
    });
    host.grant({ gpu_id: "GPU-0", worker_id: "victim", mem_mb: 1024, streams: 1, ttl_s: 600, priority: 0 });
    wrote = [];
    host.onLogLine = (_gpu, file, text) => wrote.push({ file, text });
  });

  test("hostile control lines, job descriptors and lease records: each reply is one line within its cap; no other lease ends", () => {
    const lines = { ctl: [] as string[], job: [] as string[], lease: [] as string[] };
    for (const h of HOSTILE) {
      const id = JSON.stringify(h);
      lines.ctl.push(`RELEASE ${h}`, `PRIORITY ${h}`, `LEASE ${h} mem=1 streams=1 priority=0`, `LEASE w mem=${h}`);
      if (h.trim() !== "") lines.ctl.push(`RESET ${h}`); // a bare RESET is one, and ends every lease
      lines.job.push(`{"job":${id},"outputs":["/worker/${h}/result"]}`, `{"job":"j-1","outputs":[${id}]}`, h);
      lines.lease.push(
        `{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":${id},"mem_mb":1,"streams":1,"ttl_s":60,"priority":0}`,
        `{"schema":"gpu-lease/v1","state":"RELEASED","gpu_id":${id},"worker_id":"victim","mem_mb":1024,"streams":1,"ttl_s":600,"priority":0}`,
        h,
      );
    }
    for (const file of ["ctl", "job", "lease"] as const) applyVmLines(host, log.log, "GPU-0", file, lines[file]);
    expect(wrote.length).toBeGreaterThan(HOSTILE.length * 5);
    // Replies to the VM are single appends; the victim's own ACTIVE line is written again once.
    for (const w of wrote) oneLineWithin(w.text, w.file === "lease" ? LINE_BYTES.lease : 128);
    expect(wrote.filter((w) => w.file === "lease").map((w) => JSON.parse(w.text).worker_id)).toEqual(["victim"]);
    // The bridge's own lines, read back as the VM holds them (a snapshot splits on newlines):
    // nothing in them is a control line that ends another worker's lease.
    const ctl = wrote.filter((w) => w.file === "ctl").flatMap((w) => w.text.split("\n"));
    applyVmLines(host, log.log, "GPU-0", "ctl", ctl.filter((l) => !l.startsWith("LEASE ")));
    expect(host.leases.ofWorker("GPU-0", "victim")?.state).toBe("ACTIVE");
    expect(host.leases.live().map((l) => l.worker_id)).toEqual(["victim"]);
  });

  test("a refused record whose worker id holds a newline writes no control line at all", () => {
    const record =
      `{"schema":"gpu-lease/v1","state":"ACTIVE","gpu_id":"GPU-0","worker_id":"x\\nRELEASE victim","mem_mb":1,"streams":1,"ttl_s":60,"priority":0}`;
    applyVmLines(host, log.log, "GPU-0", "lease", [record]);
    expect(wrote.filter((w) => w.file === "ctl")).toEqual([]);
    expect(JSON.parse(wrote.at(-1)!.text)).toEqual({
      job: "lease",
      state: "ERR",
      detail: "record: worker_id must be 1-64 characters of A-Z a-z 0-9 . _ -",
    });
  });
});

describe("lease records the VM writes are strict", () => {
  const never: Runner = { run: () => new Promise(() => {}) };
  const good = {
    schema: "gpu-lease/v1",
    state: "ACTIVE",
    gpu_id: "GPU-0",
    worker_id: "worker-1",
    mem_mb: 1024,
    streams: 1,
    ttl_s: 60,
    priority: 1,
  };
  const canonical = JSON.stringify(good);
  const cases: [string, string, string][] = [
    ["an extra field", JSON.stringify({ ...good, note: "hi" }), 'unknown field "note"'],
    ["a 7 KB extra field", JSON.stringify({ ...good, pad: "x".repeat(7000) }), "a lease record is at most 256 bytes, got 7141"],
    ["a missing field", JSON.stringify({ ...good, priority: undefined }), "missing field priority"],
    ["a duplicate key", canonical.replace('"mem_mb":1024', '"mem_mb":1,"mem_mb":1024'), "not in the contract's form"],
    ["spaces", JSON.stringify(good, null, 1).replaceAll("\n", ""), "not in the contract's form"],
    [
      "keys out of order",
      JSON.stringify({ ...good, schema: undefined }).replace("{", '{"schema":"gpu-lease/v1",').replace(
        '"state":"ACTIVE"',
        '"priority":1,"state":"ACTIVE"',
      ).replace(',"priority":1}', "}"),
      "not in the contract's form",
    ],
    ["an exponent", canonical.replace("1024", "1.024e3"), "not in the contract's form"],
    ["a number as a string", canonical.replace("1024", '"1024"'), "mem_mb must be an integer"],
    ["a fraction", canonical.replace('"streams":1', '"streams":1.5'), "streams must be an integer"],
    ["a zero TTL", canonical.replace('"ttl_s":60', '"ttl_s":0'), "ttl_s must be an integer"],
    ["priority 256", canonical.replace('"priority":1', '"priority":256'), "priority must be an integer"],
    ["a lowercase state", canonical.replace("ACTIVE", "active"), "state must be ACTIVE or RELEASED"],
    ["another schema", canonical.replace("gpu-lease/v1", "gpu-lease/v2"), "schema must be"],
    ["another GPU's record", canonical.replace('"GPU-0"', '"GPU-1"'), "a record for GPU-1 is in GPU-0's lease file"],
    ["an empty worker", canonical.replace("worker-1", ""), "worker_id must be"],
    ["a bidi worker", canonical.replace("worker-1", "worker\u202e1"), "worker_id must be"],
    ["a 65-character worker", canonical.replace("worker-1", "w".repeat(65)), "worker_id must be"],
    ["an array", `[${canonical}]`, "not a JSON object"],
    ["not JSON", "{worker-1}", "not JSON"],
  ];

  for (const [what, line, why] of cases) {
    test(`refuses ${what}, saying why in one line, granting nothing`, () => {
      const log = memoryLogger();
      const host = new HostState({
        gpus: () => MOCK_GPUS,
        runner: never,
        runnerKind: "cpu",
        log: log.log,
        onChange: () => {},
        clock: new FakeClock(),
      });
      const wrote: string[] = [];
      host.onLogLine = (_gpu, file, text) => wrote.push(`${file}: ${text}`);
      applyVmLines(host, log.log, "GPU-0", "lease", [line]);
      expect(host.leases.live()).toEqual([]);
      expect(wrote).toHaveLength(1);
      expect(wrote[0]).toStartWith("status: ");
      expect(JSON.parse(wrote[0]!.slice(8)).detail).toContain(why);
      expect(byteLength(wrote[0]!.slice(8))).toBeLessThanOrEqual(128);
    });
  }

  test("a well-formed record past the host's policy is refused as a grant: released in the VM at once", () => {
    const log = memoryLogger();
    const host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: never,
      runnerKind: "cpu",
      log: log.log,
      onChange: () => {},
      clock: new FakeClock(),
    });
    const wrote: string[] = [];
    host.onLogLine = (_gpu, file, text) => wrote.push(`${file}: ${text}`);
    const line = canonical.replace('"ttl_s":60', '"ttl_s":604801');
    applyVmLines(host, log.log, "GPU-0", "lease", [line]);
    expect(host.leases.live()).toEqual([]);
    expect(wrote).toEqual([
      "ctl: RELEASE worker-1 refused: ttl_s must be an integer from 1 to 604800, got 604801",
      `lease: ${line.replace("ACTIVE", "RELEASED")}`,
    ]);
  });

  test("and the canonical record is adopted", () => {
    const log = memoryLogger();
    const host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: never,
      runnerKind: "cpu",
      log: log.log,
      onChange: () => {},
      clock: new FakeClock(),
    });
    applyVmLines(host, log.log, "GPU-0", "lease", [canonical]);
    expect(host.leases.ofWorker("GPU-0", "worker-1")).toMatchObject({ mem_mb: 1024, ttl_s: 60, priority: 1 });
    expect(host.isLiveActiveLine("GPU-0", canonical)).toBe(true);
  });
});
