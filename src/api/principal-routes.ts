/** `/v1/principals/me`: who the caller is (with a tokens file), and its use against its quotas. */
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";

/** The principal routes, to mount at `/v1/principals`. */
export function principalRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on("GET", "/me", {
    summary: "The calling principal: its name, role, worker patterns, and each quota's use against its limit",
    description: "Only with a tokens file (serve --tokens FILE); the single API token has no principals or quotas (409).",
    ok: {
      status: 200,
      description: "`{name, role, workers, quotas: {leases, mem_mb, gpus, sealed_bytes, queued_jobs}}`, each quota " +
        "`{use, limit, what}` (limit null: none).",
    },
    errors: [409],
  }, (c) => {
    if (bridge.principals === undefined) {
      throw new ApiError(
        409,
        "no_tokens_file",
        "The bridge serves one API token, which has no principals or quotas; start it with serve --tokens FILE for named principals",
      );
    }
    return c.json(bridge.principals.me());
  });
  return r;
}
