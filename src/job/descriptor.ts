/**
 * The job descriptor (docs/protocol.md#7-leases-control-lines-and-jobs), validated with valibot plus the checks a schema
 * cannot make: device limits, the payload's hash, and paths that must stay inside the bundle
 * directory. The reference's own error texts are kept where it has them; every error names
 * its field.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";
import * as v from "valibot";
import { LIMITS } from "../contract/limits.ts";
import { base64Length, decodeBase64 } from "../util/base64.ts";
import { readCapped } from "../util/files.ts";
import { describeIssue } from "../util/issues.ts";
import { sha256Hex } from "../util/sha256.ts";
import { bundleRelative, decodeOperands } from "./cohesix.ts";
import { outputPathProblem } from "./output.ts";

export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
/** A path in the VM's namespace (`inputs`, `outputs`): the console's path limit. */
export const MAX_PATH_BYTES = LIMITS.pathBytes;
export const MAX_TIMEOUT_MS = 24 * 3600 * 1000;
import { SAFE_ID, SAFE_ID_RULE } from "../contract/ids.ts";

/** Job ids follow the contract's safe-id rule. */
export const JOB_ID = SAFE_ID;

const positiveInt = (what: string) =>
  v.pipe(
    v.number(`${what} must be a positive integer`),
    v.integer(`${what} must be a positive integer`),
    v.minValue(1, `${what} must be a positive integer`),
  );

const dims = (field: string) =>
  v.strictTuple(
    [positiveInt(`${field}.x`), positiveInt(`${field}.y`), positiveInt(`${field}.z`)],
    `${field} must be three positive integers [x, y, z]`,
  );

const path = (field: string) =>
  v.pipe(
    v.string(`${field} entries must be strings`),
    v.minLength(1, `${field} entries must not be empty`),
    v.maxBytes(MAX_PATH_BYTES, `${field} entries must be at most ${MAX_PATH_BYTES} bytes`),
  );

/** The descriptor's shape. Unknown fields are refused: a typo must not be ignored. */
export const JobDescriptorSchema = v.strictObject({
  job: v.pipe(v.string("job must be a string"), v.regex(JOB_ID, `job must be ${SAFE_ID_RULE}`)),
  kernel: v.picklist(["vadd", "matmul"], "kernel must be vadd or matmul"),
  grid: dims("grid"),
  block: dims("block"),
  bytes_hash: v.pipe(
    v.string("bytes_hash must use sha256:<hex> format"),
    v.startsWith("sha256:", "bytes_hash must use sha256:<hex> format"),
    v.regex(/^sha256:[0-9a-fA-F]{64}$/, "bytes_hash must contain 64 hex characters"),
  ),
  inputs: v.array(path("inputs"), "inputs must be an array of paths"),
  outputs: v.array(path("outputs"), "outputs must be an array of paths"),
  timeout_ms: v.pipe(
    v.number("timeout_ms must be a positive integer"),
    v.integer("timeout_ms must be a positive integer"),
    v.minValue(1, "timeout_ms must be a positive integer"),
    v.maxValue(MAX_TIMEOUT_MS, `timeout_ms must be at most ${MAX_TIMEOUT_MS}`),
  ),
  /** The operands (docs/protocol.md#12-what-the-vm-writes-back): little-endian f32, all of `a` then all of `b`. */
  payload_b64: v.optional(v.string("payload_b64 is not valid base64")),
});

export type JobDescriptor = v.InferOutput<typeof JobDescriptorSchema>;

/** One problem with a descriptor. */
export interface JobProblem {
  readonly field: string;
  readonly message: string;
}

/** The device's launch limits (CUDA attributes 1-7); defaults are those of every GPU since Kepler. */
export interface LaunchLimits {
  readonly maxThreadsPerBlock: number;
  readonly maxBlock: readonly [number, number, number];
  readonly maxGrid: readonly [number, number, number];
}

export const DEFAULT_LIMITS: LaunchLimits = {
  maxThreadsPerBlock: 1024,
  maxBlock: [1024, 1024, 64],
  maxGrid: [2147483647, 65535, 65535],
};

export interface ValidateContext {
  readonly limits?: LaunchLimits;
  /** Where staged inputs live; without it, jobs must carry `payload_b64`. */
  readonly bundleDir?: string;
}

/** A descriptor that passed every check, with its operands and the kernel it names. */
export interface ValidJob {
  readonly descriptor: JobDescriptor;
  /** The bytes `bytes_hash` covers: the operands, or the staged `inputs[0]`. */
  readonly payload: Uint8Array;
  /** The operands (`payload_b64`); null: the bridge generates them from the grid and block. */
  readonly operands: Uint8Array | null;
  /** A staged `.ptx` bundle named by `inputs[0]`; null: the bridge's own kernel. */
  readonly ptx: Uint8Array | null;
}

export type ValidateResult = { readonly ok: true; readonly job: ValidJob } | { readonly ok: false; readonly problems: JobProblem[] };

/** Validates `raw` (parsed JSON) as a job descriptor. */
export function validateJob(raw: unknown, ctx: ValidateContext = {}): ValidateResult {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail("(descriptor)", "the job descriptor must be a JSON object");
  }
  const parsed = v.safeParse(JobDescriptorSchema, raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.issues.map((issue) => describeIssue(issue, "(descriptor)")) };
  }
  const d = parsed.output;
  const problems: JobProblem[] = [];
  const limits = ctx.limits ?? DEFAULT_LIMITS;
  d.block.forEach((n, i) => {
    if (n > limits.maxBlock[i]!) {
      problems.push({ field: `block.${i}`, message: `block.${"xyz"[i]} is ${n}, over the device's ${limits.maxBlock[i]}` });
    }
  });
  const threads = d.block[0] * d.block[1] * d.block[2];
  if (threads > limits.maxThreadsPerBlock) {
    problems.push({ field: "block", message: `block has ${threads} threads, over the device's ${limits.maxThreadsPerBlock} per block` });
  }
  d.grid.forEach((n, i) => {
    if (n > limits.maxGrid[i]!) {
      problems.push({ field: `grid.${i}`, message: `grid.${"xyz"[i]} is ${n}, over the device's ${limits.maxGrid[i]}` });
    }
  });
  // inputs name staged bundles (/bundles/<path> or relative to --bundle-dir); an absolute
  // output is the VM's path, kept as given (the API serves the result), a relative one is
  // where the summary is written under --bundle-dir (src/job/output.ts).
  d.inputs.forEach((p, i) => {
    const r = bundleRelative(p);
    if ("error" in r) problems.push({ field: `inputs.${i}`, message: `inputs[${i}] ${r.error}` });
  });
  // Refused here, not after the kernel ran: an output the bridge would never write.
  d.outputs.forEach((p, i) => {
    if (p.includes("\0")) problems.push({ field: `outputs.${i}`, message: `outputs[${i}] must not contain NUL` });
    else if (p.split(/[\\/]/).includes("..")) {
      problems.push({ field: `outputs.${i}`, message: `outputs[${i}] must not contain '..', got ${JSON.stringify(p)}` });
    } else if (!p.startsWith("/") && outputPathProblem(p) !== null) {
      problems.push({ field: `outputs.${i}`, message: `outputs[${i}] ${outputPathProblem(p)}` });
    }
  });
  if (problems.length > 0) return { ok: false, problems };

  const expected = d.bytes_hash.slice("sha256:".length).toLowerCase();
  let payload: Uint8Array;
  if (d.payload_b64 !== undefined) {
    const bytes = d.payload_b64.length > base64Length(MAX_PAYLOAD_BYTES) + 4 ? null : decodeBase64(d.payload_b64);
    if (bytes === null) {
      const tooBig = d.payload_b64.length > base64Length(MAX_PAYLOAD_BYTES) + 4;
      return fail("payload_b64", tooBig ? `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit` : "payload_b64 is not valid base64");
    }
    if (bytes.length > MAX_PAYLOAD_BYTES) return fail("payload_b64", `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit`);
    if (sha256Hex(bytes) !== expected) return fail("bytes_hash", "payload hash mismatch");
    const ops = decodeOperands(d.kernel, bytes);
    if ("error" in ops) return fail("payload_b64", ops.error);
    // The kernel: a staged .ptx bundle when inputs[0] names one that is staged, else the bridge's own.
    let ptx: Uint8Array | null = null;
    const first = d.inputs[0];
    if (first !== undefined && first.endsWith(".ptx") && ctx.bundleDir !== undefined && isStaged(ctx.bundleDir, first)) {
      const staged = readStaged(ctx.bundleDir, first);
      if (typeof staged === "string") return fail("inputs.0", staged);
      ptx = staged;
    }
    return { ok: true, job: { descriptor: d, payload: bytes, operands: bytes, ptx } };
  } else {
    if (ctx.bundleDir === undefined) {
      return fail("payload_b64", "payload_b64 is required: no bundle directory is configured for staged inputs");
    }
    if (d.inputs.length === 0) return fail("inputs", "inputs must name the staged kernel file when payload_b64 is absent");
    const staged = readStaged(ctx.bundleDir, d.inputs[0]!);
    if (typeof staged === "string") return fail("inputs.0", staged);
    if (sha256Hex(staged) !== expected) return fail("bytes_hash", "payload hash mismatch");
    payload = staged;
  }
  // The seed's form: bytes_hash covers the staged inputs[0]; the operands are the bridge's own.
  return { ok: true, job: { descriptor: d, payload, operands: null, ptx: d.inputs[0]!.endsWith(".ptx") ? payload : null } };
}

function fail(field: string, message: string): ValidateResult {
  return { ok: false, problems: [{ field, message }] };
}

/** Why `p` is not an acceptable bundle path (relative, no `..`, no NUL), or null. */
function pathProblem(p: string): string | null {
  if (p.includes("\0")) return "must not contain NUL";
  if (isAbsolute(p)) return `must be relative to the bundle directory, got ${JSON.stringify(p)}`;
  if (p.split(/[\\/]/).includes("..")) return `must not contain '..', got ${JSON.stringify(p)}`;
  return null;
}

/** Resolves `p` under `bundleDir`, refusing anything (symlinks included) that leads outside. */
export function resolveInBundle(bundleDir: string, p: string): string | { error: string } {
  const problem = pathProblem(p);
  if (problem !== null) return { error: problem };
  let root: string;
  try {
    root = realpathSync(bundleDir);
  } catch {
    return { error: `cannot be read: the bundle directory ${bundleDir} does not exist` };
  }
  const full = join(root, p);
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    real = full; // not there yet (an output): its parent decides
    try {
      real = join(realpathSync(join(full, "..")), full.slice(full.lastIndexOf(sep) + 1));
    } catch {
      return { error: `${JSON.stringify(p)} does not exist under the bundle directory` };
    }
  }
  const rel = relative(root, real);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return { error: `${JSON.stringify(p)} leads outside the bundle directory` };
  return real;
}

/** Whether `p` names a file staged under the bundle directory. */
function isStaged(bundleDir: string, p: string): boolean {
  const rel = bundleRelative(p);
  if ("error" in rel) return false;
  const resolved = resolveInBundle(bundleDir, rel.path);
  return typeof resolved === "string" && existsSync(resolved);
}

function readStaged(bundleDir: string, p: string): Uint8Array | string {
  const rel = bundleRelative(p);
  if ("error" in rel) return rel.error;
  const resolved = resolveInBundle(bundleDir, rel.path);
  if (typeof resolved !== "string") return resolved.error;
  try {
    return readCapped(resolved, MAX_PAYLOAD_BYTES) ??
      `${JSON.stringify(p)} is ${statSync(resolved).size} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit`;
  } catch {
    return `${JSON.stringify(p)} cannot be read under the bundle directory`;
  }
}
