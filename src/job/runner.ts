/**
 * Runs a job in a child process of the bridge (`run-kernel`): the child computes, the parent
 * waits, and a timeout or a lease's end kills the child outright.
 */
import process from "node:process";
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";
import type { Runtime } from "../runtime/types.ts";
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import type { KernelSpec, KernelSummary } from "./kernels.ts";
import type { RunOutcomeWire, RunRequestWire } from "./run-kernel.ts";
import type { MappedShard } from "./cuda-runner.ts";

export interface RunRequest {
  readonly spec: KernelSpec;
  readonly runner: "cpu" | "cuda";
  readonly memLimitBytes: number;
  /** The kernel's PTX (the CUDA runner). */
  readonly payload?: Uint8Array;
  /** The operands, little-endian f32 `a` then `b`; absent: generated from the grid and block. */
  readonly operands?: Uint8Array;
  readonly device?: number;
  /** Operand `b`: a sealed shard's memory as this process's descriptor `fd`, which the child maps read-only (CUDA runner). */
  readonly shard?: MappedShard;
}

export type RunOutcome =
  | { readonly ok: true; readonly summary: KernelSummary; readonly output?: Uint8Array }
  | { readonly ok: false; readonly detail: string; readonly message?: string };

const finite = v.pipe(v.number(), v.finite());
/** What a `run-kernel` child may print as its result. */
const RunOutcomeSchema = v.variant("ok", [
  v.strictObject({
    ok: v.literal(true),
    summary: v.strictObject({
      kernel: v.picklist(["vadd", "matmul"]),
      size: v.pipe(v.number(), v.integer(), v.minValue(0)),
      checksum: finite,
      max_abs_error: finite,
      verified: v.pipe(v.number(), v.integer(), v.minValue(0)),
      duration_ms: finite,
    }),
    /** The result, little-endian f32 (decoded and checked below). */
    outputB64: v.optional(v.string()),
  }),
  v.strictObject({
    ok: v.literal(false),
    detail: v.pipe(v.string(), v.regex(/^[A-Z][A-Z0-9_-]{0,31}$/)),
    message: v.optional(v.pipe(v.string(), v.maxLength(1024))),
  }),
]);

/** Something that runs kernels; `signal` aborts with the reason as the ERR detail. */
export interface Runner {
  run(req: RunRequest, signal: AbortSignal): Promise<RunOutcome>;
  /** Whether a request may carry `shard` (a descriptor handed to the kernel's process). */
  readonly passesFds?: boolean;
}

/** The descriptor number a `run-kernel` child gets a shard's memory as. */
export const SHARD_FD = 3;

/** The runner that spawns `gpu-bridge-host run-kernel` per job. */
export class ProcessRunner implements Runner {
  readonly #runtime: Runtime;
  readonly #env: Record<string, string> | undefined;

  constructor(runtime: Runtime, env?: Record<string, string>) {
    this.#runtime = runtime;
    this.#env = env;
  }

  get passesFds(): boolean {
    return this.#runtime.passesFds === true;
  }

  async run(req: RunRequest, signal: AbortSignal): Promise<RunOutcome> {
    if (signal.aborted) return { ok: false, detail: String(signal.reason) };
    const wire: RunRequestWire = {
      spec: req.spec,
      runner: req.runner,
      memLimitBytes: req.memLimitBytes,
      ...(req.payload !== undefined && req.runner === "cuda" && { payloadB64: encodeBase64(req.payload) }),
      ...(req.operands !== undefined && { operandsB64: encodeBase64(req.operands) }),
      ...(req.device !== undefined && { device: req.device }),
      ...(req.shard !== undefined && { shardB: { ...req.shard, fd: SHARD_FD } }),
      parentPid: process.pid,
    };
    if (req.shard !== undefined && !this.passesFds) {
      return {
        ok: false,
        detail: "RUNNER_ERROR",
        message: `this runtime (${this.#runtime.name}) cannot hand a shard's descriptor to a job`,
      };
    }
    const stdin = new TextEncoder().encode(JSON.stringify(wire));
    const child = this.#runtime.spawn([...this.#runtime.self(), "run-kernel"], stdin, this.#env, req.shard?.fd);
    const onAbort = () => child.kill();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const { code, stdout, stderr } = await child.done;
      if (signal.aborted) return { ok: false, detail: String(signal.reason) };
      // The child's last line is checked like any input: its detail lands in the VM's status log.
      let parsed: v.SafeParseResult<typeof RunOutcomeSchema> | null = null;
      try {
        parsed = v.safeParse(RunOutcomeSchema, JSON.parse(stdout.trim().split("\n").at(-1) ?? ""));
      } catch {
        // not JSON: reported below
      }
      if (parsed?.success) {
        const wired: RunOutcomeWire = parsed.output;
        if (!wired.ok || wired.outputB64 === undefined) return wired;
        const output = decodeBase64(wired.outputB64);
        if (output === null) return { ok: false, detail: "RUNNER_CRASHED", message: "the kernel process sent an unreadable result" };
        return { ok: true, summary: wired.summary, output };
      }
      const why = parsed !== null
        ? `its result is malformed (${describeIssue(parsed.issues[0], "outcome").field}: ${parsed.issues[0].message})`
        : stderr.trim().split("\n").slice(-3).join(" | ").slice(-1024) || `exit status ${code}`;
      return { ok: false, detail: "RUNNER_CRASHED", message: `the kernel process ended without a result: ${why}` };
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}
