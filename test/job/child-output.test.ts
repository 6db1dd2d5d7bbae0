import { describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { HostState } from "../../src/host/state.ts";
import { ProcessRunner, type Runner, type RunOutcome } from "../../src/job/runner.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { CHILD_OUTPUT_CAP, CHILD_RESULT_BYTES } from "../../src/util/stream.ts";
import { memoryLogger, tempDir, until } from "../helpers.ts";

/** A runtime whose `run-kernel` child prints `stdout` and exits. */
const printing = (stdout: string): Runtime => ({
  ...bunRuntime(),
  self: () => [],
  spawn: () => ({ pid: 1, kill() {}, done: Promise.resolve({ code: 0, stdout, stderr: "" }) }),
});
const req = {
  spec: { kernel: "vadd" as const, grid: [1, 1, 1] as const, block: [1, 1, 1] as const },
  runner: "cpu" as const,
  memLimitBytes: 1 << 20,
};

describe("the run-kernel child's result is validated", () => {
  const bad = [
    ["a detail that would forge a status line", '{"ok":false,"detail":"X\\"}\\n{\\"job\\":\\"evil"}'],
    [
      "an unknown field",
      '{"ok":true,"summary":{"kernel":"vadd","size":1,"checksum":0,"max_abs_error":0,"verified":1,"duration_ms":1},"extra":1}',
    ],
    ["a summary of the wrong shape", '{"ok":true,"summary":{"kernel":"rm -rf","size":-1}}'],
    ["null", "null"],
  ];
  for (const [what, line] of bad) {
    test(`${what}: the job ends RUNNER_CRASHED, saying why`, async () => {
      const out = await new ProcessRunner(printing(line + "\n")).run(req, new AbortController().signal);
      expect(out.ok).toBe(false);
      expect((out as { detail: string }).detail).toBe("RUNNER_CRASHED");
      expect((out as { message: string }).message).toContain("malformed");
    });
  }

  test("a well-formed result passes through", async () => {
    const good: RunOutcome = { ok: false, detail: "OUT_OF_MEMORY", message: "too big" };
    expect(await new ProcessRunner(printing(JSON.stringify(good) + "\n")).run(req, new AbortController().signal)).toEqual(good);
  });

  test("a child that floods stdout costs the bridge at most a result's room and 64 KiB of it; stderr at most 64 KiB", async () => {
    const flood = CHILD_OUTPUT_CAP + 1_000_000;
    const child = bunRuntime().spawn(
      [
        "sh",
        "-c",
        `head -c ${flood} /dev/zero | tr '\\\\0' x; echo; echo last; head -c ${flood} /dev/zero | tr '\\\\0' y >&2; echo end >&2`,
      ],
      new Uint8Array(0),
    );
    const { stdout, stderr } = await child.done;
    expect(CHILD_OUTPUT_CAP).toBe(Math.ceil(CHILD_RESULT_BYTES / 3) * 4 + 64 * 1024);
    expect(stdout.length).toBeLessThanOrEqual(CHILD_OUTPUT_CAP);
    expect(stdout.endsWith("\nlast\n")).toBe(true);
    expect(stderr.length).toBeLessThanOrEqual(64 * 1024);
    expect(stderr.endsWith("end\n")).toBe(true);
  });
});

describe("a job whose output cannot be written", () => {
  test("ends ERR OUTPUT_FAILED instead of OK", async () => {
    const dir = tempDir("gbh-out-");
    try {
      mkdirSync(join(dir.path, "out", "result"), { recursive: true }); // a directory where the file should go
      const ok: Runner = {
        run: (r) =>
          Promise.resolve({
            ok: true,
            summary: { kernel: r.spec.kernel, size: 1, checksum: 0, max_abs_error: 0, verified: 1, duration_ms: 1 },
          }),
      };
      const host = new HostState({
        gpus: () => MOCK_GPUS,
        runner: ok,
        runnerKind: "cpu",
        log: memoryLogger().log,
        onChange: () => {},
        bundleDir: dir.path,
      });
      const l = host.grant({ gpu_id: "GPU-0", worker_id: "w", mem_mb: 64, streams: 1, ttl_s: 60, priority: 0 });
      const p = new Uint8Array(8);
      host.submitJob(l.id, {
        job: "j",
        kernel: "vadd",
        grid: [1, 1, 1],
        block: [1, 1, 1],
        bytes_hash: `sha256:${sha256Hex(p)}`,
        inputs: [],
        outputs: ["out/result"],
        timeout_ms: 1000,
        payload_b64: Buffer.from(p).toString("base64"),
      });
      await until(() => host.jobs.get("j")!.state !== "RUNNING" && host.jobs.get("j")!.state !== "QUEUED", 2000, "the job to end");
      expect(host.jobs.get("j")!.state).toBe("ERR");
      expect(host.jobs.get("j")!.detail).toBe("OUTPUT_FAILED");
      expect(host.nodeLogs("GPU-0")!.status).toContain('"state":"ERR","detail":"OUTPUT_FAILED"');
      host.close();
    } finally {
      dir.cleanup();
    }
  });
});
