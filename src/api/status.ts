/** The bridge's own state: `/healthz`, `/v1/bridge`, `/v1/snapshot` and `/metrics`. */
import type { BridgeFacade } from "./facade.ts";
import { renderMetrics } from "./metrics.ts";
import { type SubApp, subApp } from "./router.ts";

/** The status routes, to mount at `/`. */
export function statusRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  r.on(
    "GET",
    "/healthz",
    (c) =>
      c.json({ status: "ok", version: bridge.version, gpus: bridge.gpus().length, console: bridge.console.stats()?.state ?? "disabled" }),
  );
  r.on("GET", "/v1/bridge", (c) => {
    const p = bridge.console.stats();
    const snap = bridge.snapshot();
    return c.json({
      console: bridge.console.target,
      state: p?.state ?? "disabled",
      publishes: p?.publishes ?? 0,
      failures: p?.failures ?? 0,
      reconnects: p?.reconnects ?? 0,
      skipped_unchanged: p?.skippedUnchanged ?? 0,
      last_publish: p?.lastPublish ?? null,
      last_error: p?.lastError ?? null,
      // "unsupported": an older console; snapshots then replace what the VM's clients wrote.
      vm_readback: bridge.console.vmReadback?.() ?? "disabled",
      snapshot: { bytes: snap.bytes.length, sha256: snap.sha256 },
    });
  });
  r.on("GET", "/v1/snapshot", (c) => c.text(bridge.snapshot().text, 200, { "content-type": "text/plain; charset=utf-8" }));
  r.on("GET", "/metrics", async (c) => {
    const s = bridge.telemetry?.state();
    return c.text(
      renderMetrics({
        hostname: bridge.hostname,
        version: bridge.version,
        stats: await bridge.stats(),
        publisher: bridge.console.stats(),
        leases: bridge.leases.live(),
        jobs: bridge.jobs.counts(),
        ...(bridge.jobs.results !== undefined && { jobResults: bridge.jobs.results() }),
        ...(s !== undefined &&
          {
            telemetry: {
              spooledRecords: s.spooledRecords,
              spooledBytes: s.spooledBytes,
              forwarded: s.forwarded,
              dropped: s.dropped,
              oldestWaitingS: Math.floor(s.oldestWaitingMs / 1000),
              stalls: s.stalls,
            },
          }),
      }) + (bridge.vram?.metrics() ?? "") + (bridge.vmMetrics?.() ?? ""),
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    );
  });
  return r;
}
