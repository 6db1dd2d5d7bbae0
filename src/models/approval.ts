/**
 * The approval gate: which models may become active. An adapter (a model with a parent) comes
 * back from an external training farm and goes live only once someone approved it: its manifest
 * must say `[approval] status = "approved"`; an adapter whose manifest says nothing is `pending`.
 * A base model (no parent) is put in the registry by its operator by hand, which is its approval:
 * it may become active unless its manifest records another status (a base model can be rejected
 * like any other). A manifest that is not TOML cannot say it was approved, so it was not.
 */
import type { ModelCatalog } from "../contract/models.ts";
import { manifestFacts } from "./manifest.ts";
import { ModelError } from "./errors.ts";

/** A model's approval status, and whether its manifest records it (false: the rule above decided). */
export interface ApprovalStatus {
  readonly status: string;
  readonly recorded: boolean;
}

/** The approval status of a model whose manifest is `manifest`. */
export function approvalOf(manifest: string): ApprovalStatus {
  const f = manifestFacts(manifest);
  if (f.problem !== null) return { status: "unreadable", recorded: false };
  if (f.status !== null) return { status: f.status, recorded: true };
  return { status: f.base === null ? "approved" : "pending", recorded: false };
}

/**
 * Why `modelId` of `catalog` may not become active (a `not_approved` ModelError naming the status
 * and what to do), or null when it may. The model must be in the catalog.
 */
export function approvalRefusal(catalog: ModelCatalog, modelId: string): ModelError | null {
  const entry = catalog.models.find((m) => m.model_id === modelId);
  if (entry === undefined) {
    return new ModelError("not_found", `Unknown model ${JSON.stringify(modelId)}: it is not in the registry`, "model_id");
  }
  const { status, recorded } = approvalOf(entry.manifest_toml);
  if (status === "approved") return null;
  const why = recorded
    ? `its manifest says ${JSON.stringify(status)}`
    : status === "unreadable"
    ? "its manifest is not valid TOML, so it records no approval"
    : "its manifest records no approval, so it is pending";
  return new ModelError(
    "not_approved",
    `Cannot activate ${JSON.stringify(modelId)}: it is not approved (${why}); approve it with PUT /v1/models/${modelId}/approval, ` +
      `or pass "force": true (recorded with who asked)`,
    "model_id",
    { status },
  );
}
