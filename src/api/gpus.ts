/** `/v1/gpus`: the inventory with live stats and lease totals, the VM's files, control lines. */
import type { GpuInfo } from "../contract/info.ts";
import type { GpuStats } from "../inventory/stats.ts";
import type { Lease } from "../lease/types.ts";
import { readBody, requireType } from "./body.ts";
import { ApiError, LEASE_STATUS, statusesOf, STORAGE_STATUS } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { param, type SubApp, subApp } from "./router.ts";
import { leaseViewWithCdi } from "./views.ts";

const JSON_ANSWER = { headers: { "content-type": "application/json" } } as const;
const GPU_FIELDS = "The inventory's fields of the GPU (contract/info.ts), `leases: {active, mem_mb, streams}` (its live leases' totals) " +
  "and `stats` (its last sampled statistics, or null).";

/** The GPU routes, to mount at `/v1/gpus`. */
export function gpuRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const gpu = (id: string): GpuInfo => {
    const g = bridge.gpus().find((x) => x.id === id);
    if (g === undefined) throw new ApiError(404, "not_found", `Unknown GPU ${JSON.stringify(id)}`, "id");
    return g;
  };
  const gpuView = (g: GpuInfo, stats: readonly GpuStats[]) => ({
    ...g,
    leases: leaseTotals(g.id),
    stats: stats.find((s) => s.id === g.id) ?? null,
  });
  const leaseTotals = (gpuId: string) => {
    const live = bridge.leases.live(gpuId);
    return { active: live.length, mem_mb: live.reduce((n, l) => n + l.mem_mb, 0), streams: live.reduce((n, l) => n + l.streams, 0) };
  };

  // The list is the most asked-for read, and its text changes only when the inventory, the stats
  // sample or the live leases do: it is made again only then. The façade hands out the GPUs and
  // the last sample as arrays it replaces, never changes, so the same arrays mean the same text;
  // the live leases are compared one by one (a lease's GPU, memory and streams are set when it is
  // granted and never change; only its state and expiry do, and an ended one leaves the live set).
  let cached: { gpus: readonly GpuInfo[]; stats: readonly GpuStats[]; leases: readonly Lease[]; text: string } | null = null;
  const sameLeases = (was: readonly Lease[], live: readonly Lease[]) => {
    if (was.length !== live.length) return false;
    for (let i = 0; i < live.length; i++) if (was[i] !== live[i]) return false;
    return true;
  };
  r.on("GET", "/", {
    summary: "The GPUs, each with its live statistics and its live leases' totals",
    ok: { status: 200, description: `An array, one object per GPU: ${GPU_FIELDS}` },
  }, () => {
    const stats = bridge.stats();
    return stats instanceof Promise ? stats.then(list) : list(stats);
  });
  function list(stats: readonly GpuStats[]): Response {
    const gpus = bridge.gpus();
    const live = bridge.leases.live();
    if (cached === null || cached.gpus !== gpus || cached.stats !== stats || !sameLeases(cached.leases, live)) {
      const text = JSON.stringify(gpus.map((g) => gpuView(g, stats)));
      cached = { gpus, stats, leases: live, text };
    }
    return new Response(cached.text, JSON_ANSWER);
  }
  r.on("GET", "/:id", {
    summary: "One GPU, with its live statistics and its live leases' totals",
    ok: { status: 200, description: GPU_FIELDS },
    errors: [404],
  }, async (c) => c.json(gpuView(gpu(param(c, "id")), await bridge.stats())));
  for (const file of ["info", "ctl", "lease", "status"] as const) {
    r.on("GET", `/:id/${file}`, {
      summary: `The GPU's ${file} file, exactly as the VM reads it at /gpu/<id>/${file}`,
      ok: { status: 200, type: "text/plain; charset=utf-8", description: `The text of the GPU's ${file} file.` },
      errors: [404],
    }, (c) => {
      const id = gpu(param(c, "id")).id;
      const node = bridge.namespace().nodes.find((n) => n.id === id);
      if (node === undefined) throw new ApiError(404, "not_found", `GPU ${id} is not in the current snapshot`, "id");
      return c.text(node[file], 200, { "content-type": "text/plain; charset=utf-8" });
    });
  }
  r.on("POST", "/:id/ctl", {
    summary: "One control line for the GPU, as the VM would write it to its ctl file: LEASE, RELEASE, PRIORITY or RESET",
    body: { required: true, content: { "text/plain": null } },
    ok: { status: 200, description: "`{ok: true, message, lease?}`: what the line did, and the lease it granted or changed." },
    errors: [404, ...statusesOf(LEASE_STATUS), ...statusesOf(STORAGE_STATUS)],
  }, async (c) => {
    const id = gpu(param(c, "id")).id;
    requireType(c.req.raw, "text/plain");
    const line = new TextDecoder().decode(await readBody(c.req.raw, 4096)).replace(/\r?\n$/, "");
    const result = bridge.control(id, line);
    return c.json({ ok: true, message: result.message, ...(result.lease && { lease: leaseViewWithCdi(bridge)(result.lease) }) });
  });
  return r;
}
