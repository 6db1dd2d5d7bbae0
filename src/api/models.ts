/** `/v1/models`: the catalog, switching the active model (gated: src/models/activation.ts), approving a model. */
import { readJson } from "./body.ts";
import { ApiError, MODEL_STATUS, statusesOf, STORAGE_STATUS, VRAM_STATUS } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { param, type SubApp, subApp } from "./router.ts";
import { ActiveModelBody, ApprovalBody, parseBody } from "./schemas.ts";

const noRegistry = () =>
  new ApiError(409, "no_registry", "The bridge serves its built-in catalog; start it with --registry DIR to switch or approve models");

/** The model routes, to mount at `/v1/models`. */
export function modelRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const models = bridge.models;
  r.on("GET", "/", {
    summary: "The model catalog: the active model, where the catalog comes from, the models available",
    ok: {
      status: 200,
      description: "`{active, source, registry?, available: [{model_id, manifest_toml}]}`; `registry` is the registry's folder " +
        "(a model's files are under `registry/available/<model_id>/`), absent without --registry.",
    },
  }, (c) => {
    const cat = models.catalog();
    return c.json({
      active: cat.active,
      source: cat.source,
      ...(models.registry !== undefined && { registry: models.registry }),
      available: cat.models.map((m) => ({ model_id: m.model_id, manifest_toml: m.manifest_toml })),
    });
  });
  r.on("PUT", "/active", {
    summary: "Makes a model of the registry the active one (needs --registry)",
    description: "Only an approved model becomes active: an adapter whose manifest does not say `approved` is refused " +
      '(409 `not_approved`, naming its status) unless the body says `"force": true`, which the change record keeps with ' +
      "who asked. The model's files and ancestry are verified first (409 `verify_failed`, naming what differs; force does " +
      "not pass it). With `seal_lease` (or the daemon's --seal-active), an adapter's weights are sealed into that lease's " +
      "VRAM and verified there before the pointer moves; a seal that fails leaves the active model as it was.",
    body: { required: true, content: { "application/json": ActiveModelBody } },
    ok: {
      status: 200,
      description: "`{active, forced?: {approval}, shard?: {shard_id, digest, lease_id, gpu_id, vram_bytes}}`: the model now active, " +
        "the status force let through, the sealed shard's handle.",
    },
    errors: [404, 409, 422, ...statusesOf(MODEL_STATUS), ...statusesOf(VRAM_STATUS), ...statusesOf(STORAGE_STATUS)],
  }, async (c) => {
    const { model_id, force, seal_lease } = parseBody(ActiveModelBody, await readJson(c.req.raw));
    if (models.setActive === undefined) throw noRegistry();
    if (!models.catalog().models.some((m) => m.model_id === model_id)) {
      throw new ApiError(422, "invalid", `Unknown model ${JSON.stringify(model_id)}: it is not in the registry`, "model_id");
    }
    const done = await models.setActive(model_id, {
      ...(force !== undefined && { force }),
      ...(seal_lease !== undefined && { seal_lease }),
    });
    return c.json({
      active: models.catalog().active,
      ...(done?.forced !== undefined && { forced: done.forced }),
      ...(done?.shard !== undefined && { shard: done.shard }),
    });
  });
  r.on("PUT", "/:id/approval", {
    summary: "Approves or rejects a model of the registry, with a reason (needs --registry)",
    description: "Records `[approval] status, reason, by, at` in the model's manifest (rewritten atomically; its hash, which " +
      "its children recorded, does not change) and appends a `model.approval` change. The active pointer does not move.",
    body: { required: true, content: { "application/json": ApprovalBody } },
    ok: { status: 200, description: "`{model_id, status, previous, reason}`." },
    errors: [404, 409, 422, ...statusesOf(MODEL_STATUS), ...statusesOf(STORAGE_STATUS)],
  }, async (c) => {
    const { status, reason } = parseBody(ApprovalBody, await readJson(c.req.raw));
    if (models.setApproval === undefined) throw noRegistry();
    return c.json(models.setApproval(param(c, "id"), status, reason));
  });
  return r;
}
