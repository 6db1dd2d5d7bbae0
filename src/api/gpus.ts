/** `/v1/gpus`: the inventory with live stats and lease totals, the VM's files, control lines. */
import type { GpuInfo } from "../contract/info.ts";
import type { GpuStats } from "../inventory/stats.ts";
import { readBody, requireType } from "./body.ts";
import { ApiError } from "./errors.ts";
import type { BridgeFacade } from "./facade.ts";
import { param, type SubApp, subApp } from "./router.ts";
import { leaseViewWithCdi } from "./views.ts";

/** The GPU routes, to mount at `/v1/gpus`. */
export function gpuRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const gpu = (id: string): GpuInfo => {
    const g = bridge.gpus().find((x) => x.id === id);
    if (g === undefined) throw new ApiError(404, "not_found", `Unknown GPU ${JSON.stringify(id)}`, "id");
    return g;
  };
  const gpuView = (g: GpuInfo, stats: readonly GpuStats[]) => {
    const live = bridge.leases.live(g.id);
    return {
      ...g,
      leases: { active: live.length, mem_mb: live.reduce((n, l) => n + l.mem_mb, 0), streams: live.reduce((n, l) => n + l.streams, 0) },
      stats: stats.find((s) => s.id === g.id) ?? null,
    };
  };

  r.on("GET", "/", async (c) => {
    const stats = await bridge.stats();
    return c.json(bridge.gpus().map((g) => gpuView(g, stats)));
  });
  r.on("GET", "/:id", async (c) => c.json(gpuView(gpu(param(c, "id")), await bridge.stats())));
  for (const file of ["info", "ctl", "lease", "status"] as const) {
    r.on("GET", `/:id/${file}`, (c) => {
      const id = gpu(param(c, "id")).id;
      const node = bridge.namespace().nodes.find((n) => n.id === id);
      if (node === undefined) throw new ApiError(404, "not_found", `GPU ${id} is not in the current snapshot`, "id");
      return c.text(node[file], 200, { "content-type": "text/plain; charset=utf-8" });
    });
  }
  r.on("POST", "/:id/ctl", async (c) => {
    const id = gpu(param(c, "id")).id;
    requireType(c.req.raw, "text/plain");
    const line = new TextDecoder().decode(await readBody(c.req.raw, 4096)).replace(/\r?\n$/, "");
    const result = bridge.control(id, line);
    return c.json({ ok: true, message: result.message, ...(result.lease && { lease: leaseViewWithCdi(bridge)(result.lease) }) });
  });
  return r;
}
