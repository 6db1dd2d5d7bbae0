/** `/v1/cdi`: the CDI spec the bridge keeps (serve --cdi-dir), as written now. */
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { type SubApp, subApp } from "./router.ts";

/** The CDI route, to mount at `/v1/cdi`: 404 when CDI is off, 503 while the host cannot be described. */
export function cdiRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on("GET", "/", {
    summary: "The CDI spec the bridge keeps (serve --cdi-dir), as written now",
    ok: { status: 200, description: "The CDI spec (JSON), one device per GPU and per live lease." },
    errors: [404, 503],
  }, (c) => {
    const cdi = bridge.cdi;
    if (cdi === undefined) throw new ApiError(404, "not_found", "CDI is off: start the bridge with serve --cdi-dir DIR");
    const spec = cdi.current();
    if (spec === null) {
      throw new ApiError(503, "unavailable", `No CDI spec: the GPUs cannot be described now (see the log); ${cdi.path} is absent`);
    }
    return c.json(spec);
  });
  return r;
}
