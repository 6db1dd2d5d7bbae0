/**
 * `peft export`: pulls one LoRA training job from the Queen over a console session, as `coh peft
 * export` does (LS `/queen/export/lora_jobs`, LS the job, CAT each of its three files), checks
 * what can be checked, and writes the files into `<out>/<job>/` (docs/protocol.md#10-queen-telemetry).
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import type { Connect } from "../runtime/transport.ts";
import { type ExportFile, fromBinaryLines, QUEEN, TELEMETRY_FRAME_SCHEMA } from "../contract/queen.ts";
import { modelIdProblem } from "../contract/limits.ts";
import { isSafeId } from "../contract/ids.ts";
import { decodeCbor } from "../util/cbor.ts";
import { sha256Hex } from "../util/sha256.ts";
import { openSession, sendAll } from "./publish.ts";
import type { ConsoleSession } from "./session.ts";

/** Where to pull from and where to write. */
export interface PeftExportTarget {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly ticket: string;
  readonly ackTimeoutMs: number;
  readonly out: string;
  /** The job; the newest (highest id) when absent. */
  readonly job?: string | undefined;
  readonly force?: boolean;
}

/** What was pulled. */
export interface PeftExportResult {
  readonly job: string;
  readonly dir: string;
  readonly baseModel: string;
  readonly frames: number;
  readonly bytes: Readonly<Record<ExportFile, number>>;
}

/** A bundle that cannot be pulled or does not hold what a job must; the message says which file and why. */
export class PeftExportError extends Error {
  override name = "PeftExportError";
}

/** Pulls the job, checks it and writes it; throws PeftExportError or ConsoleError. */
export async function peftExport(connect: Connect, t: PeftExportTarget): Promise<PeftExportResult> {
  const session = await openSession(connect, t, { ackTimeoutMs: t.ackTimeoutMs, window: 1 });
  let files: Map<ExportFile, Uint8Array>;
  let job: string;
  try {
    await sendAll(session, [
      { line: `AUTH ${t.token}`, verb: "AUTH" },
      { line: `ATTACH queen ${t.ticket}`, verb: "ATTACH" },
    ]);
    const jobs = (await session.requestLines(`LS ${QUEEN.exportRoot}`, "LS")).map((l) => l.trim()).filter((l) => l !== "");
    if (t.job !== undefined && !jobs.includes(t.job)) {
      throw new PeftExportError(`Export job ${t.job} not found under ${QUEEN.exportRoot} (jobs: ${jobs.join(", ") || "none"})`);
    }
    job = t.job ?? newest(jobs);
    if (!isSafeId(job)) throw new PeftExportError(`Cannot export job ${JSON.stringify(job)}: not a safe folder name`);
    files = await pull(session, `${QUEEN.exportRoot}/${job}`);
  } finally {
    session.close();
  }
  const checked = check(job, files);
  const dir = join(t.out, job);
  const present = QUEEN.exportFiles.filter((f) => existsSync(join(dir, f)));
  if (present.length > 0 && t.force !== true) {
    throw new PeftExportError(`Cannot write ${dir}: ${present.join(", ")} already there (--force replaces them)`);
  }
  mkdirSync(dir, { recursive: true });
  for (const name of QUEEN.exportFiles) {
    // Each file whole or not at all: written beside, then renamed over.
    const path = join(dir, name);
    writeFileSync(`${path}.partial`, files.get(name)!);
    renameSync(`${path}.partial`, path);
  }
  const bytes = Object.fromEntries(QUEEN.exportFiles.map((f) => [f, files.get(f)!.length])) as Record<ExportFile, number>;
  return { job, dir, baseModel: checked.baseModel, frames: checked.frames, bytes };
}

function newest(jobs: readonly string[]): string {
  if (jobs.length === 0) {
    throw new PeftExportError(`No export job under ${QUEEN.exportRoot} yet: the Queen exports one when its policy is met`);
  }
  // Job ids carry a counter (job_0007): the highest is the newest; a longer id sorts after a shorter one.
  return [...jobs].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)).at(-1)!;
}

async function pull(session: ConsoleSession, root: string): Promise<Map<ExportFile, Uint8Array>> {
  const entries = (await session.requestLines(`LS ${root}`, "LS")).map((l) => l.trim()).filter((l) => l !== "");
  for (const need of QUEEN.exportFiles) {
    if (!entries.includes(need)) throw new PeftExportError(`Export ${root} is missing ${need}`);
  }
  const extra = entries.find((e) => !(QUEEN.exportFiles as readonly string[]).includes(e));
  if (extra !== undefined) throw new PeftExportError(`Export ${root} holds an unexpected file ${extra}`);
  const files = new Map<ExportFile, Uint8Array>();
  for (const name of QUEEN.exportFiles) {
    const lines = await session.requestLines(`CAT ${root}/${name}`, "CAT");
    let bytes: Uint8Array;
    if (name === "telemetry.cbor") {
      const decoded = fromBinaryLines(lines);
      if (typeof decoded === "string") throw new PeftExportError(`${root}/${name}: ${decoded}`);
      bytes = decoded;
    } else {
      bytes = new TextEncoder().encode(lines.map((l) => l + "\n").join(""));
    }
    const max = QUEEN.exportMaxBytes[name];
    if (bytes.length === 0) throw new PeftExportError(`${root}/${name} is empty`);
    if (bytes.length > max) throw new PeftExportError(`${root}/${name} is ${bytes.length} bytes, over the ${max} allowed`);
    files.set(name, bytes);
  }
  return files;
}

/** The checks a bundle must pass: frames, the base model, and what policy.toml says of the others. */
function check(job: string, files: ReadonlyMap<ExportFile, Uint8Array>): { baseModel: string; frames: number } {
  const telemetry = files.get("telemetry.cbor")!;
  let frames: unknown;
  try {
    frames = decodeCbor(telemetry);
  } catch (error) {
    throw new PeftExportError(`telemetry.cbor is not CBOR: ${(error as Error).message}`);
  }
  if (!Array.isArray(frames)) throw new PeftExportError("telemetry.cbor is not an array of telemetry frames");
  frames.forEach((f, i) => {
    const frame = f as Record<string, unknown> | null;
    if (typeof frame !== "object" || frame === null || frame.schema !== TELEMETRY_FRAME_SCHEMA) {
      throw new PeftExportError(`telemetry.cbor frame ${i}: schema is not ${TELEMETRY_FRAME_SCHEMA}`);
    }
    for (const k of ["worker_id", "role", "seq", "emitted_ms", "payload"]) {
      if (!(k in frame)) throw new PeftExportError(`telemetry.cbor frame ${i}: no ${k}`);
    }
  });
  const ref = new TextDecoder().decode(files.get("base_model.ref")!);
  const baseModel = ref.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  const problem = baseModel === "" ? "it names no model" : modelIdProblem(baseModel);
  if (problem !== null) throw new PeftExportError(`base_model.ref: ${problem}`);
  let policy: Record<string, unknown>;
  try {
    policy = parseToml(new TextDecoder().decode(files.get("policy.toml")!));
  } catch (error) {
    throw new PeftExportError(`policy.toml is not valid TOML: ${(error as Error).message}`);
  }
  const table = (
    name: string,
  ) => (typeof policy[name] === "object" && policy[name] !== null ? policy[name] as Record<string, unknown> : {});
  const tel = table("telemetry");
  if (policy.job_id !== undefined && policy.job_id !== job) {
    throw new PeftExportError(`policy.toml names job ${String(policy.job_id)}, not ${job}`);
  }
  if (policy.base_model !== undefined && policy.base_model !== baseModel) {
    throw new PeftExportError(`policy.toml names base model ${String(policy.base_model)}, base_model.ref ${baseModel}`);
  }
  if (tel.sha256 !== undefined && tel.sha256 !== sha256Hex(telemetry)) {
    throw new PeftExportError(`telemetry.cbor's SHA-256 is ${sha256Hex(telemetry)}, policy.toml records ${String(tel.sha256)}`);
  }
  if (tel.bytes !== undefined && Number(tel.bytes) !== telemetry.length) {
    throw new PeftExportError(`telemetry.cbor is ${telemetry.length} bytes, policy.toml records ${String(tel.bytes)}`);
  }
  if (tel.records !== undefined && Number(tel.records) !== frames.length) {
    throw new PeftExportError(`telemetry.cbor holds ${frames.length} frames, policy.toml records ${String(tel.records)}`);
  }
  return { baseModel, frames: frames.length };
}
