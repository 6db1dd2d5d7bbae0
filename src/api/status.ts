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
    {
      summary: "Liveness: the version, how many GPUs, the console link's state",
      ok: { status: 200, description: '`{status: "ok", version, gpus, console}`; console is the publisher\'s state or "disabled".' },
    },
    (c) =>
      c.json({ status: "ok", version: bridge.version, gpus: bridge.gpus().length, console: bridge.console.stats()?.state ?? "disabled" }),
  );
  r.on("GET", "/v1/bridge", {
    summary: "The bridge's publishing state: console, publish counters, VM read-back, the snapshot's size and digest",
    ok: {
      status: 200,
      description: "`{console, state, publishes, failures, reconnects, skipped_unchanged, last_publish, last_error, vm_readback, " +
        "snapshot: {bytes, sha256}}`; console is `{host, port}` or null when not publishing.",
    },
  }, (c) => {
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
  r.on("GET", "/v1/snapshot", {
    summary: "The namespace snapshot as it would be published now",
    ok: { status: 200, type: "text/plain; charset=utf-8", description: "The snapshot's text, exactly as the console receives it." },
  }, (c) => c.text(bridge.snapshot().text, 200, { "content-type": "text/plain; charset=utf-8" }));
  r.on("GET", "/metrics", {
    summary: "Prometheus metrics: per-GPU gauges under the DCGM exporter's names, and the bridge's own counters",
    ok: { status: 200, type: "text/plain; version=0.0.4; charset=utf-8", description: "Prometheus text exposition format 0.0.4." },
  }, async (c) => {
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
        ...(bridge.events !== undefined &&
          { changes: { counts: bridge.events.counts(), clients: bridge.events.clients, dropped: bridge.events.dropped } }),
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
      }) + (bridge.vram?.metrics() ?? "") + (bridge.vmMetrics?.() ?? "") + (bridge.k8sMetrics?.() ?? ""),
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    );
  });
  return r;
}
