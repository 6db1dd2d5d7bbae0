/** `serve --cdi-dir DIR`: the CDI keeper on the bridge's backend and leases (`GET /v1/cdi` is in src/api/cdi.ts). */
import { generate } from "../cdi/generate-command.ts";
import type { CdiBackend } from "../cdi/host.ts";
import { CdiKeeper } from "../cdi/keeper.ts";
import type { LeaseShareMount } from "../cdi/share-mount.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { Lease, LeaseEvent } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";

export interface BridgeCdiOptions {
  readonly cdiDir: string;
  /** Where device nodes and driver files are read; undefined: DEFAULTS.cdiRoot. */
  readonly cdiRoot?: string | undefined;
  readonly backend: CdiBackend;
  readonly sysRoot: string;
}

/** Starts the keeper: the spec is written (or a stale one removed) before this resolves. */
export async function startBridgeCdi(
  o: BridgeCdiOptions,
  leases: { live(): readonly Lease[]; on(listener: (e: LeaseEvent) => void): () => void },
  log: Logger,
  clock: Clock,
  refreshMs?: number,
  leaseShare?: (leaseId: string) => LeaseShareMount | null,
): Promise<CdiKeeper> {
  const root = o.cdiRoot ?? DEFAULTS.cdiRoot;
  // Without --cdi-root, the mock backend describes its GPUs' own device nodes (src/cdi/mock-nodes.ts).
  const devRoot = o.cdiRoot;
  const kind = DEFAULTS.cdiBridgeKind;
  const keeper = new CdiKeeper({
    dir: o.cdiDir,
    kind,
    leases,
    log,
    clock,
    ...(refreshMs !== undefined && { refreshMs }),
    ...(leaseShare !== undefined && { leaseShare }),
    generate: () =>
      generate(
        { backend: o.backend, sysRoot: o.sysRoot, devRoot, driverRoot: root, csvDir: undefined, hookPath: undefined, cdiKind: kind },
        kind,
        process.env,
        log,
      ),
  });
  await keeper.start();
  return keeper;
}
