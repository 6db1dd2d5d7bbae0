/**
 * A job's child killed while the bridge is still writing its operands (or reading its result)
 * is that job's outcome only: the broken pipe never surfaces as an unhandled rejection, which
 * would end the whole daemon. The real `run-kernel` child, operands from 0 bytes to the most a
 * job may carry, aborted at once, mid-write and mid-run.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import process from "node:process";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { ProcessRunner, type RunOutcome } from "../../src/job/runner.ts";
import { MAX_PAYLOAD_BYTES } from "../../src/job/descriptor.ts";

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => void unhandled.push(e);
beforeEach(() => {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});
afterEach(() => void process.off("unhandledRejection", onUnhandled));

const settleRejections = () => new Promise((r) => setTimeout(r, 50));

test("a child killed mid-write of its operands ends that job only, at every size and moment", async () => {
  const runner = new ProcessRunner(bunRuntime());
  const outcomes: RunOutcome[] = [];
  // 0 bytes, one element pair, 1 MiB, the maximum: a pipe buffer is 64 KiB, so the larger two
  // are still being written when the abort lands.
  for (const bytes of [0, 8, 1 << 20, MAX_PAYLOAD_BYTES]) {
    const operands = new Uint8Array(bytes);
    for (const abortAfterMs of [0, 1, 5, 20]) {
      const abort = new AbortController();
      const run = runner.run(
        { spec: { kernel: "vadd", grid: [1, 1, 1], block: [1, 1, 1] }, runner: "cpu", memLimitBytes: 1 << 30, operands },
        abort.signal,
      );
      const timer = setTimeout(() => abort.abort("TIMEOUT"), abortAfterMs);
      outcomes.push(await run);
      clearTimeout(timer);
    }
  }
  await settleRejections();
  expect(unhandled.map(String)).toEqual([]);
  // Each one ended as a job: aborted (TIMEOUT), or, where the child beat the abort, its own answer.
  for (const o of outcomes) expect(o.ok ? "OK" : o.detail).toMatch(/^(TIMEOUT|OK|INVALID_PAYLOAD)$/);
  expect(outcomes.filter((o) => !o.ok && o.detail === "TIMEOUT").length).toBeGreaterThan(0);
}, 60_000);

test("a child that dies before reading its stdin leaves the bridge standing", async () => {
  // Not the kernel runner: a program that exits at once, so the 16 MiB write always breaks.
  const rt = bunRuntime();
  const child = rt.spawn(["/bin/sh", "-c", "exit 3"], new Uint8Array(MAX_PAYLOAD_BYTES));
  const { code } = await child.done;
  child.kill();
  await settleRejections();
  expect(code).toBe(3);
  expect(unhandled.map(String)).toEqual([]);
});
