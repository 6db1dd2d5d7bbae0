/**
 * Lease benchmark: 100,000 concurrent leases with random TTLs on real timers.
 * Reports grant and release throughput (target >= 100,000/s), memory per lease, and the p99
 * lateness of expiry against each lease's deadline (target <= 20 ms).
 * Run with `make bench-leases`; LEASES=N changes the count.
 */
import { LeaseManager } from "../src/lease/manager.ts";
import { quantile } from "./quantile.ts";

const N = Number(process.env.LEASES ?? 100_000);
const GPUS = 1000; // 100 leases per GPU: grants check the GPU's live leases, as in production
const gpus = Array.from({ length: GPUS }, (_, i) => ({ id: `GPU-${i}`, memory_mb: 1 << 30 }));
const gc = () => (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
const mem = () => (gc(), process.memoryUsage().heapUsed);
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString("en")}/s`;
const request = (i: number, ttl: number) => ({
  gpu_id: `GPU-${i % GPUS}`,
  worker_id: `w${i}`,
  mem_mb: 1,
  streams: 1,
  ttl_s: ttl,
  priority: i % 256,
});

// 1. Throughput: grant N leases, then release them all.
{
  const m = new LeaseManager({ gpus: () => gpus, maxStreamsPerGpu: 1 << 20, keepReleased: 1024 });
  const before = mem();
  let t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < N; i++) ids.push(m.grant(request(i, 3600)).id);
  const grantMs = performance.now() - t0;
  const perLease = (mem() - before) / N;
  t0 = performance.now();
  for (const id of ids) m.release(id, "done");
  const releaseMs = performance.now() - t0;
  m.close();
  console.log(`${N.toLocaleString("en")} leases on ${GPUS} GPUs`);
  console.log(
    `  grant    ${rate(N, grantMs)} (${grantMs.toFixed(0)} ms)   target >= 100,000/s: ${
      N / (grantMs / 1000) >= 100_000 ? "met" : "MISSED"
    }`,
  );
  console.log(
    `  release  ${rate(N, releaseMs)} (${releaseMs.toFixed(0)} ms)   target >= 100,000/s: ${
      N / (releaseMs / 1000) >= 100_000 ? "met" : "MISSED"
    }`,
  );
  console.log(`  memory   ${perLease.toFixed(0)} bytes of heap per live lease`);
}

// 2. Expiry: N live leases with TTLs spread over 1-5 s, on the real clock and one timer.
{
  const late: number[] = [];
  const m = new LeaseManager({ gpus: () => gpus, maxStreamsPerGpu: 1 << 20 });
  m.on((e) => {
    if (e.type === "released") late.push(Date.now() - e.lease.expires_at);
  });
  // Grants arrive as requests, not one blocking loop: yield to the event loop every 1000, so the
  // expiry timer runs between them as it would in the daemon.
  for (let i = 0; i < N; i++) {
    m.grant(request(i, 1 + Math.floor(Math.random() * 5)));
    if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0));
  }
  const t0 = Date.now();
  while (late.length < N && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
  m.close();
  console.log(
    `  expiry   ${late.length.toLocaleString("en")} expired; lateness p50 ${quantile(late, 0.5)} ms, p99 ${quantile(late, 0.99)} ms, ` +
      `max ${Math.max(...late)} ms   target p99 <= 20 ms: ${quantile(late, 0.99) <= 20 ? "met" : "MISSED"}`,
  );
}
