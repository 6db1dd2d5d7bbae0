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
import { bundleRelative, decodeOperands, SHARDS_PREFIX } from "./cohesix.ts";
import { outputPathProblem } from "./output.ts";
import { kernelProblem } from "./kernel-policy.ts";
import type { JobKernel } from "../config/defaults.ts";

export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
/** A path in the VM's namespace (`inputs`, `outputs`): the console's path limit. */
export const MAX_PATH_BYTES = LIMITS.pathBytes;
export const MAX_TIMEOUT_MS = 24 * 3600 * 1000;
import { SAFE_ID, SAFE_ID_RULE, SHARD_ID } from "../contract/ids.ts";

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
  /** The operands (docs/protocol.md#12-what-the-vm-writes-back): little-endian f32, all of `a` then all of `b`; `a` alone when inputs name a shard. */
  payload_b64: v.optional(v.string("payload_b64 is not valid base64")),
});

export type JobDescriptor = v.InferOutput<typeof JobDescriptorSchema>;

/** One problem with a descriptor. */
export interface JobProblem {
  readonly field: string;
  readonly message: string;
  /** A shard input that is not sealed under the job's lease, or failed verification: the consumers' codes. */
  readonly code?: "not_sealed" | "integrity_violation";
  /** The system error behind it (a file that could not be resolved or read), when there is one. */
  readonly cause?: unknown;
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
  /**
   * A sealed shard of the job's own lease, by id; undefined for an id no shard has and for a
   * shard of another lease alike (a job must not learn another lease's ids). Without it, no
   * shard can be named.
   */
  readonly shard?: (id: string) => ShardInput | undefined;
  /** The kinds of job this bridge runs (`--allowed-kernels`, src/job/kernel-policy.ts); absent: all. */
  readonly allowedKernels?: readonly JobKernel[];
}

/** What the validator needs to know of a shard a job names as operand b. */
export interface ShardInput {
  readonly vram_bytes: number;
  readonly state: "SEALED" | "FAILED";
  readonly failure: string | null;
}

/** A descriptor that passed every check, with its operands and the kernel it names. */
export interface ValidJob {
  readonly descriptor: JobDescriptor;
  /** The bytes `bytes_hash` covers: the operands (only `a` when a shard is `b`), or the staged `inputs[0]`. */
  readonly payload: Uint8Array;
  /** The operands (`payload_b64`: `a` then `b`, or only `a` with `shard`); null: the bridge generates them from the grid and block. */
  readonly operands: Uint8Array | null;
  /** The sealed shard that is operand `b` (`/shards/<id>` in `inputs`), read from VRAM when the job starts, and its size. */
  readonly shard?: { readonly id: string; readonly bytes: number };
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
  const problems = [...launchProblems(d, ctx.limits ?? DEFAULT_LIMITS), ...pathProblems(d)];
  if (problems.length > 0) return { ok: false, problems };
  const expected = d.bytes_hash.slice("sha256:".length).toLowerCase();
  const at = d.inputs.findIndex((p) => p.startsWith(SHARDS_PREFIX));
  const result = at >= 0
    ? withShard(d, at, expected, ctx)
    : d.payload_b64 !== undefined
    ? withOperands(d, d.payload_b64, expected, ctx)
    : fromStaged(d, expected, ctx);
  // Known only now: whether a staged PTX bundle runs, or the bridge's own kernel.
  const refused = result.ok && ctx.allowedKernels !== undefined ? kernelProblem(result.job, ctx.allowedKernels) : null;
  return refused === null ? result : { ok: false, problems: [refused] };
}

/** The block and grid against the device's launch limits. */
function launchProblems(d: JobDescriptor, limits: LaunchLimits): JobProblem[] {
  const problems: JobProblem[] = [];
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
  return problems;
}

/**
 * inputs name staged bundles (/bundles/<path> or relative to --bundle-dir), or one sealed shard
 * (/shards/<shard_id>, checked against the lease's shards in withShard); an absolute output
 * is the VM's path, kept as given (the API serves the result), a relative one is where the
 * summary is written under --bundle-dir (src/job/output.ts). Outputs are refused here, not
 * after the kernel ran: an output the bridge would never write.
 */
function pathProblems(d: JobDescriptor): JobProblem[] {
  const problems: JobProblem[] = [];
  let shards = 0;
  d.inputs.forEach((p, i) => {
    if (p.startsWith(SHARDS_PREFIX)) {
      const id = p.slice(SHARDS_PREFIX.length);
      if (!SHARD_ID.test(id)) {
        problems.push({
          field: `inputs.${i}`,
          message: `inputs[${i}] must be ${SHARDS_PREFIX}<shard_id> with a shard id of 1-256 characters of A-Z a-z 0-9 _ -, got ${
            JSON.stringify(p)
          }`,
        });
      } else if (++shards > 1) {
        problems.push({ field: `inputs.${i}`, message: `inputs[${i}] names a second shard: one shard can be named, and it is operand b` });
      }
      return;
    }
    const r = bundleRelative(p);
    if ("error" in r) problems.push({ field: `inputs.${i}`, message: `inputs[${i}] ${r.error}` });
  });
  d.outputs.forEach((p, i) => {
    if (p.includes("\0")) problems.push({ field: `outputs.${i}`, message: `outputs[${i}] must not contain NUL` });
    else if (p.split(/[\\/]/).includes("..")) {
      problems.push({ field: `outputs.${i}`, message: `outputs[${i}] must not contain '..', got ${JSON.stringify(p)}` });
    } else if (!p.startsWith("/") && outputPathProblem(p) !== null) {
      problems.push({ field: `outputs.${i}`, message: `outputs[${i}] ${outputPathProblem(p)}` });
    }
  });
  return problems;
}

/**
 * `payload_b64` carries the operands, which `bytes_hash` covers. The kernel: a staged .ptx
 * bundle when inputs[0] names one that is staged, else the bridge's own.
 */
function withOperands(d: JobDescriptor, b64: string, expected: string, ctx: ValidateContext, parts: 1 | 2 = 2): ValidateResult {
  const tooBig = b64.length > base64Length(MAX_PAYLOAD_BYTES) + 4;
  const bytes = tooBig ? null : decodeBase64(b64);
  if (bytes === null) {
    return fail("payload_b64", tooBig ? `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit` : "payload_b64 is not valid base64");
  }
  if (bytes.length > MAX_PAYLOAD_BYTES) return fail("payload_b64", `payload_b64 is over the ${MAX_PAYLOAD_BYTES}-byte limit`);
  const actual = sha256Hex(bytes);
  if (actual !== expected) return fail("bytes_hash", hashMismatch(expected, actual, "payload_b64"));
  const ops = decodeOperands(d.kernel, bytes, parts);
  if ("error" in ops) return fail("payload_b64", ops.error);
  let ptx: Uint8Array | null = null;
  const first = d.inputs[0];
  if (first !== undefined && first.endsWith(".ptx") && ctx.bundleDir !== undefined) {
    const staged = readStaged(ctx.bundleDir, first, true);
    if (staged !== null && !(staged instanceof Uint8Array)) return fail("inputs.0", staged.error, staged.cause);
    ptx = staged;
  }
  return { ok: true, job: { descriptor: d, payload: bytes, operands: bytes, ptx } };
}

/**
 * `inputs[at]` names a sealed shard of the job's lease as operand `b`: `payload_b64` carries
 * only `a`, and `bytes_hash` covers those bytes (the shard's own seal covers `b`). The shard
 * must be as large as `a` (vadd: n floats each; matmul: n×n each). A shard the lease does not
 * hold, another lease's included, is `not_sealed`; one that failed verification is
 * `integrity_violation`.
 */
function withShard(d: JobDescriptor, at: number, expected: string, ctx: ValidateContext): ValidateResult {
  const field = `inputs.${at}`;
  const id = d.inputs[at]!.slice(SHARDS_PREFIX.length);
  const shard = ctx.shard?.(id);
  if (shard === undefined) {
    return refuse(
      field,
      "not_sealed",
      `inputs[${at}] names shard ${JSON.stringify(id)}: no shard with that id is sealed under this job's lease`,
    );
  }
  if (shard.state !== "SEALED") {
    return refuse(
      field,
      "integrity_violation",
      `inputs[${at}] names shard ${JSON.stringify(id)}, which failed verification (${shard.failure}); delete it and seal it again`,
    );
  }
  if (d.payload_b64 === undefined) {
    return fail("payload_b64", `payload_b64 is required when inputs name a shard: it carries operand a, and the shard is operand b`);
  }
  const r = withOperands(d, d.payload_b64, expected, ctx, 1);
  if (!r.ok) return r;
  const a = r.job.payload.length;
  if (shard.vram_bytes !== a) {
    return fail(
      field,
      `inputs[${at}] names shard ${
        JSON.stringify(id)
      } of ${shard.vram_bytes} bytes as operand b, but payload_b64 holds ${a} bytes of operand a: ${d.kernel} needs both the same size`,
    );
  }
  return { ok: true, job: { ...r.job, shard: { id, bytes: shard.vram_bytes } } };
}

function refuse(field: string, code: "not_sealed" | "integrity_violation", message: string): ValidateResult {
  return { ok: false, problems: [{ field, message, code }] };
}

/** The seed's form: bytes_hash covers the staged inputs[0]; the operands are the bridge's own. */
function fromStaged(d: JobDescriptor, expected: string, ctx: ValidateContext): ValidateResult {
  if (ctx.bundleDir === undefined) {
    return fail("payload_b64", "payload_b64 is required: no bundle directory is configured for staged inputs");
  }
  if (d.inputs.length === 0) return fail("inputs", "inputs must name the staged kernel file when payload_b64 is absent");
  const staged = readStaged(ctx.bundleDir, d.inputs[0]!);
  if (!(staged instanceof Uint8Array)) return fail("inputs.0", staged.error, staged.cause);
  const actual = sha256Hex(staged);
  if (actual !== expected) return fail("bytes_hash", hashMismatch(expected, actual, `inputs[0] ${JSON.stringify(d.inputs[0])}`));
  return { ok: true, job: { descriptor: d, payload: staged, operands: null, ptx: d.inputs[0]!.endsWith(".ptx") ? staged : null } };
}

function fail(field: string, message: string, cause?: unknown): ValidateResult {
  return { ok: false, problems: [{ field, message, ...(cause !== undefined && { cause }) }] };
}

/** The reference's words, then both digests, so a client can tell which bytes it hashed. */
function hashMismatch(expected: string, actual: string, what: string): string {
  return `payload hash mismatch: bytes_hash is sha256:${expected}, the ${what} bytes hash to sha256:${actual}`;
}

/** A path that cannot be used, with the system error behind it; `missing`: nothing is there (ENOENT). */
export interface PathProblem {
  readonly error: string;
  readonly cause?: unknown;
  readonly missing?: boolean;
}

const missingPath = (error: unknown) => (error as { code?: unknown }).code === "ENOENT";

/** Why `p` is not an acceptable bundle path (relative, no `..`, no NUL), or null. */
function pathProblem(p: string): string | null {
  if (p.includes("\0")) return "must not contain NUL";
  if (isAbsolute(p)) return `must be relative to the bundle directory, got ${JSON.stringify(p)}`;
  if (p.split(/[\\/]/).includes("..")) return `must not contain '..', got ${JSON.stringify(p)}`;
  return null;
}

/**
 * Resolves `p` under `bundleDir`, refusing anything (symlinks included) that leads outside. A
 * path that is not there reads "does not exist"; any other failure (a symlink loop, a folder
 * that cannot be searched) says so with the system's words and keeps the error as `cause`.
 */
export function resolveInBundle(bundleDir: string, p: string): string | PathProblem {
  const problem = pathProblem(p);
  if (problem !== null) return { error: problem };
  let root: string;
  try {
    root = realpathSync(bundleDir);
  } catch (error) {
    return missingPath(error)
      ? { error: `cannot be read: the bundle directory ${bundleDir} does not exist`, cause: error }
      : { error: `cannot be read: the bundle directory ${bundleDir} cannot be resolved: ${(error as Error).message}`, cause: error };
  }
  const full = join(root, p);
  let real: string;
  try {
    real = realpathSync(full);
  } catch (error) {
    if (!missingPath(error)) return unresolvable(p, root, error);
    try {
      // Not there yet (an output): its parent decides.
      real = join(realpathSync(join(full, "..")), full.slice(full.lastIndexOf(sep) + 1));
    } catch (parentError) {
      if (!missingPath(parentError)) return unresolvable(p, root, parentError);
      return { error: `${JSON.stringify(p)} does not exist under the bundle directory ${root}`, cause: parentError, missing: true };
    }
  }
  const rel = relative(root, real);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return { error: `${JSON.stringify(p)} leads outside the bundle directory` };
  return real;
}

function unresolvable(p: string, root: string, error: unknown): PathProblem {
  return { error: `${JSON.stringify(p)} cannot be resolved under the bundle directory ${root}: ${(error as Error).message}`, cause: error };
}

/**
 * The staged file `p` names, read whole (up to MAX_PAYLOAD_BYTES). With `optional`, a file that
 * is not there is null (the bridge's own kernel runs); anything else that keeps it from being
 * read is a problem either way, never taken for "not staged".
 */
function readStaged(bundleDir: string, p: string, optional: true): Uint8Array | PathProblem | null;
function readStaged(bundleDir: string, p: string): Uint8Array | PathProblem;
function readStaged(bundleDir: string, p: string, optional = false): Uint8Array | PathProblem | null {
  const rel = bundleRelative(p);
  if ("error" in rel) return { error: rel.error };
  const resolved = resolveInBundle(bundleDir, rel.path);
  if (typeof resolved !== "string") return optional && resolved.missing === true ? null : resolved;
  if (optional && !existsSync(resolved)) return null;
  try {
    return readCapped(resolved, MAX_PAYLOAD_BYTES) ??
      { error: `${JSON.stringify(p)} is ${statSync(resolved).size} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit` };
  } catch (error) {
    return { error: `${JSON.stringify(p)} cannot be read under the bundle directory: ${(error as Error).message}`, cause: error };
  }
}
