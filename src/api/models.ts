/** `/v1/models`: the catalog, and switching the active model. */
import { readJson } from "./body.ts";
import { ApiError, statusesOf, STORAGE_STATUS } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";
import { ActiveModelBody, parseBody } from "./schemas.ts";

/** The model routes, to mount at `/v1/models`. */
export function modelRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const models = bridge.models;
  r.on("GET", "/", {
    summary: "The model catalog: the active model, where the catalog comes from, the models available",
    ok: { status: 200, description: "`{active, source, available: [{model_id, manifest_toml}]}`." },
  }, (c) => {
    const cat = models.catalog();
    return c.json({
      active: cat.active,
      source: cat.source,
      available: cat.models.map((m) => ({ model_id: m.model_id, manifest_toml: m.manifest_toml })),
    });
  });
  r.on("PUT", "/active", {
    summary: "Makes a model of the registry the active one (needs --registry)",
    body: { required: true, content: { "application/json": ActiveModelBody } },
    ok: { status: 200, description: "`{active}`: the model now active." },
    errors: [409, 422, ...statusesOf(STORAGE_STATUS)],
  }, async (c) => {
    const { model_id } = parseBody(ActiveModelBody, await readJson(c.req.raw));
    if (models.setActive === undefined) {
      throw new ApiError(409, "no_registry", "The bridge serves its built-in catalog; start it with --registry DIR to switch models");
    }
    if (!models.catalog().models.some((m) => m.model_id === model_id)) {
      throw new ApiError(422, "invalid", `Unknown model ${JSON.stringify(model_id)}: it is not in the registry`, "model_id");
    }
    models.setActive(model_id);
    return c.json({ active: models.catalog().active });
  });
  return r;
}
