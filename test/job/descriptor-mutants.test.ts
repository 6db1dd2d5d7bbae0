/**
 * validateJob() at the edges a plausible slip would pass unseen: bytes_hash in upper case (hex
 * is case-blind), for operands and for a staged input alike.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { validateJob } from "../../src/job/descriptor.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { tempDir } from "../helpers.ts";

const f32 = (...xs: number[]) => Buffer.from(new Float32Array(xs).buffer);
const operands = f32(1, 2, 3, 10, 20, 30);
const good = (o: Record<string, unknown> = {}) => ({
  job: "job-1",
  kernel: "vadd",
  grid: [64, 1, 1],
  block: [256, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [],
  outputs: ["out/job-1.json"],
  timeout_ms: 5000,
  payload_b64: operands.toString("base64"),
  ...o,
});

let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir("gbh-desc-")));
afterEach(() => dir.cleanup());

describe("bytes_hash", () => {
  test("upper-case hex matches the payload's digest", () => {
    const r = validateJob(good({ bytes_hash: `sha256:${sha256Hex(operands).toUpperCase()}` }));
    expect(r).toMatchObject({ ok: true });
  });

  test("upper-case hex matches a staged input's digest", () => {
    const staged = Buffer.from("staged kernel bytes");
    writeFileSync(join(dir.path, "k.bin"), staged);
    const raw = good({ bytes_hash: `sha256:${sha256Hex(staged).toUpperCase()}`, inputs: ["k.bin"] });
    delete (raw as { payload_b64?: string }).payload_b64;
    const r = validateJob(raw, { bundleDir: dir.path });
    expect(r.ok).toBe(true);
    expect(r.ok && Buffer.from(r.job.payload).equals(staged)).toBe(true);
  });
});
