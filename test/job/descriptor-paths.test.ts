/**
 * validateJob() on staged paths that cannot be resolved: a path that is not there reads "does
 * not exist"; a symlink loop or a folder that cannot be searched says what the system said, keeps
 * the error as the problem's cause, and is never taken for "not staged".
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { validateJob } from "../../src/job/descriptor.ts";
import { JobError } from "../../src/host/state.ts";
import { sha256Hex } from "../../src/util/sha256.ts";
import { REPO, tempDir, tempFolder } from "../helpers.ts";

const operands = Buffer.from(new Float32Array([1, 2, 3, 10, 20, 30]).buffer);
const withOperands = (input: string) => ({
  job: "job-1",
  kernel: "vadd",
  grid: [64, 1, 1],
  block: [256, 1, 1],
  bytes_hash: `sha256:${sha256Hex(operands)}`,
  inputs: [input],
  outputs: [],
  timeout_ms: 5000,
  payload_b64: operands.toString("base64"),
});
const stagedOnly = (input: string) => {
  const d: Record<string, unknown> = { ...withOperands(input), bytes_hash: `sha256:${"0".repeat(64)}` };
  delete d.payload_b64;
  return d;
};

let bundle: { path: string; cleanup: () => void };
beforeEach(() => {
  bundle = tempDir("gbh-bundle-paths-");
  mkdirSync(join(bundle.path, "kernels"));
  // Two links that point at each other: resolving either fails with ELOOP.
  symlinkSync("loop-b.ptx", join(bundle.path, "kernels", "loop-a.ptx"));
  symlinkSync("loop-a.ptx", join(bundle.path, "kernels", "loop-b.ptx"));
});
afterEach(() => {
  chmodSync(join(bundle.path, "kernels"), 0o755);
  bundle.cleanup();
});

const firstProblem = (raw: unknown): { field: string; message: string; cause?: unknown; code?: string } => {
  const r = validateJob(raw, { bundleDir: bundle.path });
  if (r.ok) throw new Error("expected a problem");
  const p = r.problems[0]!;
  return { ...p, code: (p.cause as { code?: string } | undefined)?.code };
};

test("a symlink loop in inputs[0] is refused with ELOOP and its cause, not reported as missing", () => {
  const p = firstProblem(stagedOnly("kernels/loop-a.ptx"));
  expect(p.field).toBe("inputs.0");
  expect(p.message).toStartWith(`"kernels/loop-a.ptx" cannot be resolved under the bundle directory `);
  expect(p.message).toContain("ELOOP");
  expect(p.message).not.toContain("does not exist");
  expect((p.cause as { code?: string }).code).toBe("ELOOP");
});

test("with operands, a staged .ptx in a symlink loop is refused rather than replaced by the bridge's own kernel", () => {
  const p = firstProblem(withOperands("/bundles/kernels/loop-a.ptx"));
  expect(p.field).toBe("inputs.0");
  expect((p.cause as { code?: string }).code).toBe("ELOOP");
});

test("a missing file still reads does not exist, naming the path and the bundle directory", () => {
  const p = firstProblem(stagedOnly("nowhere/vadd.ptx"));
  expect(p).toMatchObject({
    field: "inputs.0",
    message: expect.stringContaining('"nowhere/vadd.ptx" does not exist under the bundle directory'),
  });
  expect((p.cause as { code?: string }).code).toBe("ENOENT");
  const absent = validateJob(withOperands("/bundles/kernels/none.ptx"), { bundleDir: bundle.path });
  expect(absent.ok && absent.job.ptx).toBeNull(); // not staged: the bridge's own kernel
});

test("with operands, a .ptx in a folder that is not there is not staged: the bridge's own kernel runs", () => {
  const r = validateJob(withOperands("/bundles/no-such-folder/vadd.ptx"), { bundleDir: bundle.path });
  expect(r.ok && r.job.ptx).toBeNull();
});

test("a bundle directory that cannot be resolved (a symlink loop) is named with the system's words and its cause", () => {
  const loop = join(bundle.path, "kernels", "loop-a.ptx");
  const r = validateJob(stagedOnly("kernels/vadd.ptx"), { bundleDir: loop });
  if (r.ok) throw new Error("expected a problem");
  expect(r.problems[0]!.field).toBe("inputs.0");
  expect(r.problems[0]!.message).toStartWith(`cannot be read: the bundle directory ${loop} cannot be resolved: `);
  expect(r.problems[0]!.message).toContain("ELOOP");
  expect((r.problems[0]!.cause as { code?: string }).code).toBe("ELOOP");
});

test("a folder that cannot be searched (EACCES) is named as such, with its cause", async () => {
  writeFileSync(join(bundle.path, "kernels", "vadd.ptx"), "x");
  chmodSync(bundle.path, 0o755);
  chmodSync(join(bundle.path, "kernels"), 0o000);
  // Root passes every permission check: as root, the check runs in a child as nobody (uid 65534).
  const p = process.getuid?.() === 0 ? await problemAsNobody(stagedOnly("kernels/vadd.ptx")) : firstProblem(stagedOnly("kernels/vadd.ptx"));
  expect(p.field).toBe("inputs.0");
  expect(p.message).toStartWith(`"kernels/vadd.ptx" cannot be resolved under the bundle directory `);
  expect(p.message).toContain("EACCES");
  expect(p.code).toBe("EACCES");
});

/**
 * validateJob's first problem, computed by a child process running as nobody. The child loads
 * the validator bundled into a folder nobody can read: the checkout itself may not be (a
 * mutation sandbox, a clone under a private home).
 */
async function problemAsNobody(raw: unknown): Promise<{ field: string; message: string; code?: string }> {
  const out = tempFolder("gbh-validator-");
  chmodSync(out, 0o755);
  const built = await Bun.build({ entrypoints: [join(REPO, "src/job/descriptor.ts")], target: "bun", outdir: out });
  if (!built.success) throw new Error(`bundling the validator failed: ${built.logs.join("\n")}`);
  const module = built.outputs[0]!.path;
  chmodSync(module, 0o644);
  const script = `
    const { validateJob } = await import(${JSON.stringify(module)});
    const r = validateJob(${JSON.stringify(raw)}, { bundleDir: ${JSON.stringify(bundle.path)} });
    const p = r.ok ? null : r.problems[0];
    console.log(JSON.stringify(p && { field: p.field, message: p.message, code: p.cause?.code }));
  `;
  const child = spawnSync(process.execPath, ["-e", script], { uid: 65534, gid: 65534, encoding: "utf8", cwd: out });
  if (child.status !== 0) throw new Error(`the child as nobody failed: ${child.stderr}`);
  return JSON.parse(child.stdout);
}

test("a refused job carries its first problem's cause", () => {
  const cause = Object.assign(new Error("ELOOP: too many symbolic links encountered"), { code: "ELOOP" });
  const error = new JobError("invalid", "Invalid job descriptor", [{ field: "inputs.0", message: "cannot be resolved", cause }]);
  expect(error.cause).toBe(cause);
});
