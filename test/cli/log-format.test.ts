/** `--log-format json`: one JSON object a line, the same lines and the same masking as text. */
import { describe, expect, test } from "bun:test";
import { parseCommand } from "../../src/cli/options.ts";
import { createLogger } from "../../src/util/log.ts";
import { main } from "../../src/main.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import { applyVmLines } from "../../src/vm/apply.ts";
import { FakeClock, memoryStdio } from "../helpers.ts";

const at = new Date("2026-01-02T03:04:05.678Z");

function jsonLogger(secrets: string[] = []) {
  const lines: string[] = [];
  const log = createLogger({ level: "info", format: "json", write: (l) => lines.push(l), now: () => at, secrets }, "leases");
  return { log, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createLogger() with format json", () => {
  test("writes one object per line: time, level, component, message, then the line's fields", () => {
    const { log, lines, records } = jsonLogger();
    log.info("lease L-1 (w1 on GPU-0) renewed", { lease: "L-1", worker: "w1", gpu: "GPU-0", ttl_s: 120 });
    log.child("jobs").warn("job J-7 on GPU-1: ERR TIMEOUT", { job: "J-7", gpu: "GPU-1" });
    log.debug("below the level");
    expect(lines.length).toBe(2);
    for (const l of lines) expect(l.endsWith("}\n") && l.indexOf("\n") === l.length - 1).toBe(true);
    expect(records()).toEqual([
      {
        time: "2026-01-02T03:04:05.678Z",
        level: "info",
        component: "leases",
        message: "lease L-1 (w1 on GPU-0) renewed",
        lease: "L-1",
        worker: "w1",
        gpu: "GPU-0",
        ttl_s: 120,
      },
      {
        time: "2026-01-02T03:04:05.678Z",
        level: "warn",
        component: "jobs",
        message: "job J-7 on GPU-1: ERR TIMEOUT",
        job: "J-7",
        gpu: "GPU-1",
      },
    ]);
    expect(Object.keys(records()[0]!).slice(0, 4)).toEqual(["time", "level", "component", "message"]);
  });

  test("a field cannot replace the record's own keys", () => {
    const { log, records } = jsonLogger();
    log.error("real", { message: "forged", level: "debug", time: "0", component: "x", gpu: "GPU-0" });
    expect(records()).toEqual([{ time: at.toISOString(), level: "error", component: "leases", message: "real", gpu: "GPU-0" }]);
  });

  test("masks secrets exactly as text mode does, in the message and in string fields, given or added later", () => {
    const secret = "s3cr3t-token-value";
    const late = "late-added-key-42";
    const text: string[] = [];
    const textLog = createLogger({ level: "info", write: (l) => text.push(l), now: () => at, secrets: [secret] }, "leases");
    const { log, records } = jsonLogger([secret]);
    for (const l of [log, textLog]) {
      l.addSecret!(late);
      l.info(`peer echoed AUTH ${secret} and ${late}; not inside x${secret}`, { request: secret, note: `key ${late}` });
    }
    const [r] = records();
    expect(r!.message).toBe(`peer echoed AUTH *** and ***; not inside x${secret}`);
    expect(text[0]).toContain(`: ${r!.message}\n`);
    expect(r!.request).toBe("***");
    expect(r!.note).toBe("key ***");
    expect(JSON.stringify(records())).not.toContain(`AUTH ${secret}`);
  });

  test("a peer's control, bidi and line-separator characters cannot break or reorder the line", () => {
    const { log, lines, records } = jsonLogger();
    const hostile = "a\nb\r\u001b[31m\u0085\u2028\u202e\u2066z";
    log.info(hostile, { worker: hostile });
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/^[\x20-\x7e]+\n$/); // nothing raw but printable ASCII
    expect(records()[0]!.message).toBe(hostile); // and the text itself survives, escaped
    expect(records()[0]!.worker).toBe(hostile);
  });
});

describe("the ids of a line, as JSON keys", () => {
  test("an adopted VM lease and a queued VM job carry lease, worker, gpu and job", () => {
    const { log, records } = jsonLogger();
    const clock = new FakeClock();
    const host = new HostState({
      gpus: () => MOCK_GPUS,
      runner: { run: () => new Promise(() => {}) },
      runnerKind: "cpu",
      log,
      onChange: () => {},
      clock,
    });
    const lease = {
      schema: "gpu-lease/v1",
      state: "ACTIVE",
      gpu_id: "GPU-0",
      worker_id: "w-1",
      mem_mb: 512,
      streams: 1,
      ttl_s: 30,
      priority: 1,
    };
    applyVmLines(host, log, "GPU-0", "lease", [JSON.stringify(lease)]);
    const id = host.leases.ofWorker("GPU-0", "w-1")!.id;
    const adopted = records().find((r) => String(r.message).startsWith("adopted the VM's lease"));
    expect(adopted).toMatchObject({ level: "info", lease: id, worker: "w-1", gpu: "GPU-0" });
    expect(String(adopted!.message)).toContain(id); // the text line says it too
    const payload = Buffer.alloc(32, 1);
    const job = {
      job: "j-1",
      kernel: "vadd",
      grid: [1, 1, 1],
      block: [1, 1, 1],
      bytes_hash: `sha256:${new Bun.CryptoHasher("sha256").update(payload).digest("hex")}`,
      inputs: ["/bundles/vadd.ptx"],
      outputs: ["/worker/w-1/result"],
      timeout_ms: 5000,
      payload_b64: payload.toString("base64"),
    };
    applyVmLines(host, log, "GPU-0", "job", [JSON.stringify(job), "{not json"]);
    expect(records().find((r) => String(r.message).startsWith("queued the VM's job j-1"))).toMatchObject({
      job: "j-1",
      lease: id,
      worker: "w-1",
      gpu: "GPU-0",
    });
    expect(records().find((r) => String(r.message).startsWith("refused the VM's job"))).toMatchObject({ level: "warn", gpu: "GPU-0" });
  });
});

describe("--log-format", () => {
  test("json is taken by the bridge, serve, stats and mock-console; text is the default", () => {
    const format = (argv: string[]) => {
      const c = parseCommand(argv, {});
      return "options" in c && "logFormat" in c.options ? c.options.logFormat : null;
    };
    expect(format(["--list"])).toBe("text");
    expect(format(["--list", "--log-format", "json"])).toBe("json");
    expect(format(["serve", "--log-format=json"])).toBe("json");
    expect(format(["stats", "--log-format", "json"])).toBe("json");
    expect(format(["mock-console", "--log-format", "json"])).toBe("json");
  });

  test("a bad value is refused naming the flag, the choices and the value", () => {
    expect(() => parseCommand(["serve", "--log-format", "yaml"], {})).toThrow('Option --log-format must be one of text, json, got "yaml"');
  });

  test("reaches the logger main() builds: the same warning, as a JSON line", async () => {
    // A registry that is not there: --list warns and goes on with the built-in catalog.
    const argv = ["--mock", "--list", "--registry", "/nonexistent/registry"];
    const text = memoryStdio();
    const json = memoryStdio();
    expect(await main(argv, {}, text.io)).toBe(0);
    expect(await main([...argv, "--log-format", "json"], {}, json.io)).toBe(0);
    expect(json.out.join("")).toBe(text.out.join(""));
    const lines = json.err.join("").split("\n").filter((l) => l !== "");
    expect(lines.length).toBe(1);
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: "warn", component: "bridge" });
    expect(record.message).toContain("Cannot use registry /nonexistent/registry");
    expect(text.err.join("")).toContain(` WARN  bridge: ${record.message}\n`);
  });
});
