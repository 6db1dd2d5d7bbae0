/** `GET /v1/config` (admin): the bridge's effective settings, flags and --config file merged, secrets masked. */
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";

/** The config route, to mount at `/v1/config`. */
export function configRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on("GET", "/", {
    summary: "The effective settings: the --config file's under the command line's, every default filled in, secrets masked",
    description: "Needs the admin role with a tokens file, and the API token without one (unlike other reads).",
    ok: { status: 200, description: "The settings by name (the daemon's options); tokens read `(hidden)`, or null when unset." },
    errors: [404],
  }, (c) => {
    const settings = bridge.settings?.();
    if (settings === undefined) throw new ApiError(404, "not_found", "This bridge was built without its settings (a test's façade)");
    return c.json(settings);
  });
  return r;
}
