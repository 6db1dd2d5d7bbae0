/**
 * Moving the active pointer and changing a model's approval, as the API asks for them. An
 * activation passes, in order: the approval gate (src/models/approval.ts; `force` passes it and
 * is recorded), the files and ancestry check (src/models/verify.ts; nothing passes a model whose
 * files differ from its manifest), and, with a lease to seal under (`seal_lease`, or the daemon's
 * `--seal-active`), the adapter's weights sealed into that lease's VRAM and verified there. Only
 * then does the pointer move, so a failure at any step leaves the model that was active live.
 */
import { join } from "node:path";
import { LIMITS } from "../contract/limits.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { byteLength } from "../util/bytes.ts";
import { readCapped, replaceFileDurably } from "../util/files.ts";
import type { Logger } from "../util/log.ts";
import { approvalOf, approvalRefusal } from "./approval.ts";
import { ModelError } from "./errors.ts";
import { manifestFacts, withApproval } from "./manifest.ts";
import { differences, verifyModel } from "./verify.ts";
import type { RegistryWatch } from "./watch.ts";

/** A sealed shard as an activation records it. */
export interface SealedWeights {
  readonly shard_id: string;
  readonly digest: string;
  readonly lease_id: string;
  readonly gpu_id: string;
  readonly vram_bytes: number;
}

/** Seals the file at `path` (whose manifest SHA-256 is `sha256`) under `leaseId` and verifies it in VRAM; throws when either fails. */
export type SealWeights = (leaseId: string, path: string, sha256: string) => Promise<SealedWeights>;

export interface ActivationDeps {
  /** The registry's root. */
  readonly dir: string;
  readonly watch: RegistryWatch;
  readonly log: Logger;
  /** `--seal-active`: the lease every activation of an adapter seals under unless the request names one. */
  readonly sealLease?: string;
  /** Absent: sealed shards are unavailable on this bridge. */
  readonly seal?: SealWeights;
}

export interface ActivationRequest {
  readonly model_id: string;
  readonly force?: boolean;
  readonly seal_lease?: string;
}

/** What an activation did. */
export interface Activation {
  readonly active: string;
  /** Present when `force` let an unapproved model through: the status it had. */
  readonly forced?: { readonly approval: string };
  readonly shard?: SealedWeights;
}

/** Makes `req.model_id` active if every step passes (see the header); a ModelError or VramError says which did not. */
export async function activate(d: ActivationDeps, req: ActivationRequest): Promise<Activation> {
  const id = req.model_id;
  const entry = registryEntry(d.watch.catalog, id);
  const refusal = approvalRefusal(d.watch.catalog, id);
  if (refusal !== null && req.force !== true) throw refusal;
  const status = approvalOf(entry.manifest_toml).status;
  const report = verifyModel(d.dir, id);
  if (!report.ok) {
    throw new ModelError(
      "verify_failed",
      `Cannot activate ${JSON.stringify(id)}: it differs from what its manifest records: ${differences(report)} ` +
        `(gpu-bridge-host models verify ${id} --registry ${d.dir} shows every check)`,
      "model_id",
      { findings: report.findings.filter((f) => !f.ok) },
    );
  }
  const shard = await sealIfAsked(d, req, entry.manifest_toml);
  // Sealing takes time: the model must still be there and, unless forced, still approved.
  const again = approvalRefusal(d.watch.catalog, id);
  if (again !== null && (again.code !== "not_approved" || req.force !== true)) throw again;
  const note = { ...(refusal !== null && { forced: true, approval: status }), ...(shard !== undefined && { shard }) };
  d.watch.switchTo(id, note);
  if (refusal !== null) d.log.warn(`${id} was made active by force although its approval is ${JSON.stringify(status)}`);
  return {
    active: d.watch.catalog.active,
    ...(refusal !== null && { forced: { approval: status } }),
    ...(shard !== undefined && { shard }),
  };
}

/** Whether a hand edit of `active` naming `modelId` may stand (null), or why not: what `RegistryWatch`'s gate asks. */
export function handEditRefusal(d: Pick<ActivationDeps, "dir" | "sealLease">, catalog: ModelCatalog, modelId: string): Error | null {
  const refusal = approvalRefusal(catalog, modelId);
  if (refusal !== null) return refusal;
  const report = verifyModel(d.dir, modelId);
  if (!report.ok) return new ModelError("verify_failed", `it differs from what its manifest records: ${differences(report)}`);
  if (d.sealLease !== undefined && manifestFacts(catalog.models.find((m) => m.model_id === modelId)!.manifest_toml).base !== null) {
    return new ModelError(
      "invalid",
      `the bridge seals every adapter it activates (--seal-active ${d.sealLease}), which a hand edit cannot wait for: ` +
        "activate it with PUT /v1/models/active",
    );
  }
  return null;
}

/** The adapter's weights sealed under the request's lease or `--seal-active`'s; undefined when there is none, or for a base model. */
async function sealIfAsked(d: ActivationDeps, req: ActivationRequest, manifest: string): Promise<SealedWeights | undefined> {
  const lease = req.seal_lease ?? d.sealLease;
  if (lease === undefined) return undefined;
  const facts = manifestFacts(manifest);
  if (facts.base === null) {
    // --seal-active covers adapters: a base model is loaded by the inference process itself.
    if (req.seal_lease === undefined) return undefined;
    throw new ModelError(
      "invalid",
      `Cannot seal ${JSON.stringify(req.model_id)}: it is a base model; only adapters are sealed on activation`,
      "seal_lease",
    );
  }
  const weights = facts.files.find((f) => f.name === "adapter.safetensors") ?? facts.files.find((f) => f.name !== "lora.json");
  if (weights === undefined) {
    throw new ModelError("invalid", `Cannot seal ${JSON.stringify(req.model_id)}: its manifest lists no weights file`, "model_id");
  }
  if (d.seal === undefined) {
    throw new ModelError(
      "invalid",
      `Cannot seal ${JSON.stringify(req.model_id)} under lease ${lease}: sealed shards are unavailable on this bridge`,
      "seal_lease",
    );
  }
  return await d.seal(lease, join(d.dir, "available", req.model_id, weights.name), weights.sha256);
}

function registryEntry(catalog: ModelCatalog, id: string) {
  if (catalog.source !== "registry") {
    throw new ModelError("no_registry", "The registry cannot be used now (the bridge serves its built-in catalog); see the bridge's log");
  }
  const entry = catalog.models.find((m) => m.model_id === id);
  if (entry === undefined) throw new ModelError("invalid", `Unknown model ${JSON.stringify(id)}: it is not in the registry`, "model_id");
  return entry;
}

/** The statuses PUT /v1/models/{id}/approval sets. */
export const APPROVAL_DECISIONS = ["approved", "rejected"] as const;
/** The longest reason an approval records, in bytes (the manifest must stay under the VM's 8 KiB). */
export const REASON_MAX_BYTES = 512;
// Control characters, line and paragraph separators, and the invisible formatting characters
// that reorder or hide text: a reason is read by people, in logs and in the VM.
// deno-lint-ignore no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/;

/** Why `reason` cannot be recorded, or null. */
export function reasonProblem(reason: string): string | null {
  if (reason.trim() === "") return "reason must say why (it is empty)";
  const n = byteLength(reason);
  if (n > REASON_MAX_BYTES) return `reason must be at most ${REASON_MAX_BYTES} bytes, got ${n}`;
  const bad = UNPRINTABLE.exec(reason);
  if (bad !== null) {
    return `reason must be printable text: it holds U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")} at ${bad.index}`;
  }
  return null;
}

export interface ApprovalChange {
  readonly model_id: string;
  readonly status: string;
  readonly previous: string;
  readonly reason: string;
}

/**
 * Records `status` and `reason` in the model's manifest (`[approval]`, with `by` and the time),
 * rewriting it atomically, and reloads the registry. The manifest's hash, which its children
 * recorded, does not change (src/models/manifest.ts). The pointer does not move: rejecting the
 * active model keeps it live until another is activated (the log says so).
 */
export function setApproval(
  d: Pick<ActivationDeps, "dir" | "watch" | "log">,
  id: string,
  decision: { status: string; reason: string; by?: string; at: string },
): ApprovalChange {
  const problem = reasonProblem(decision.reason);
  if (problem !== null) throw new ModelError("invalid", problem, "reason");
  const path = join(d.dir, "available", id, "manifest.toml");
  let bytes: Uint8Array | null;
  try {
    bytes = readCapped(path, LIMITS.manifestBytes);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new ModelError("not_found", `Unknown model ${JSON.stringify(id)}: ${path} does not exist`, "id");
    }
    throw new ModelError("invalid", `Cannot read ${path}: ${(error as Error).message}`, "id", {}, { cause: error });
  }
  if (bytes === null) {
    throw new ModelError(
      "invalid",
      `Cannot change the approval of ${JSON.stringify(id)}: ${path} is over ${LIMITS.manifestBytes} bytes`,
      "id",
    );
  }
  const manifest = new TextDecoder().decode(bytes);
  const facts = manifestFacts(manifest);
  if (facts.problem !== null) {
    throw new ModelError(
      "invalid",
      `Cannot change the approval of ${JSON.stringify(id)}: its manifest ${facts.problem}; fix ${path} first`,
      "id",
    );
  }
  const previous = approvalOf(manifest).status;
  const next = withApproval(manifest, {
    status: decision.status,
    reason: decision.reason,
    ...(decision.by !== undefined && { by: decision.by }),
    at: decision.at,
  });
  const size = byteLength(next);
  if (size > LIMITS.manifestBytes) {
    throw new ModelError(
      "too_large",
      `Cannot record this approval: ${id}'s manifest would be ${size} bytes and the VM accepts at most ${LIMITS.manifestBytes}; give a shorter reason`,
      "reason",
    );
  }
  replaceFileDurably(path, next, 0o644);
  d.watch.reload();
  if (decision.status !== "approved" && d.watch.catalog.active === id) {
    d.log.warn(`${id} is active and now ${decision.status}: it stays active until another model is activated`);
  }
  return { model_id: id, status: decision.status, previous, reason: decision.reason };
}
