/** `serve --cdi-dir DIR` (app wiring, not the cdi capability): the keeper on the daemon's backend and leases, and `GET /v1/cdi`. */
import type { ApiExtension } from "./api/app.ts";
import { ApiError } from "./api/errors.ts";
import type { Clock, Lease, LeaseEvent } from "./lease/types.ts";
import type { Logger } from "./log.ts";
import { generate } from "./cdi/generate-command.ts";
import type { CdiBackend } from "./cdi/host.ts";
import { BRIDGE_CDI_KIND, CdiKeeper } from "./cdi/keeper.ts";

export interface DaemonCdiOptions {
  readonly cdiDir: string;
  /** Where device nodes and driver files are read (default /). */
  readonly cdiRoot?: string;
  readonly backend: CdiBackend;
  readonly sysRoot: string;
}

/** Starts the keeper: the spec is written (or a stale one removed) before this resolves. */
export async function startDaemonCdi(
  o: DaemonCdiOptions,
  leases: { live(): readonly Lease[]; on(listener: (e: LeaseEvent) => void): () => void },
  log: Logger,
  clock: Clock,
  refreshMs?: number,
): Promise<CdiKeeper> {
  const root = o.cdiRoot ?? "/";
  const keeper = new CdiKeeper({
    dir: o.cdiDir,
    kind: BRIDGE_CDI_KIND,
    leases,
    log,
    clock,
    ...(refreshMs !== undefined && { refreshMs }),
    generate: () =>
      generate({ backend: o.backend, sysRoot: o.sysRoot, devRoot: root, driverRoot: root, csvDir: undefined, hookPath: undefined, cdiKind: BRIDGE_CDI_KIND }, BRIDGE_CDI_KIND, process.env, log),
  });
  await keeper.start();
  return keeper;
}

/** `GET /v1/cdi`: the spec as written now (404 when CDI is off, 503 while the host cannot be described). */
export function cdiRoutes(keeper: CdiKeeper | null): ApiExtension {
  return (app) => {
    app.get("/v1/cdi", (c) => {
      if (keeper === null) throw new ApiError(404, "not_found", "CDI is off: start the bridge with serve --cdi-dir DIR");
      const spec = keeper.current();
      if (spec === null) throw new ApiError(503, "unavailable", `No CDI spec: the GPUs cannot be described now (see the log); ${keeper.path} is absent`);
      return c.json(spec);
    });
  };
}
