/**
 * What a tokens file costs the API (docs/tenancy.md), in process (`app.request`, no socket):
 * GET /v1/gpus and a lease grant-and-release, with the single token and with a tokens file of
 * PRINCIPALS principals (default 50; the caller is the last, so every digest is compared), the
 * operator holding quotas that are checked on every grant. Run with `make bench-tenancy`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../src/api/app.ts";
import { PrincipalGuard } from "../src/api/principals.ts";
import { newToken, tokenHash } from "../src/api/tokens-file.ts";
import { bridgeFacade } from "../src/app/bridge.ts";
import { HostState } from "../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../src/inventory/mock.ts";
import { builtinCatalog } from "../src/models/catalog.ts";
import { createLogger } from "../src/util/log.ts";

const PRINCIPALS = Number(process.env.PRINCIPALS ?? 50);
const N = Number(process.env.N ?? 20_000);
const dir = mkdtempSync(join(tmpdir(), "gbh-bench-tenancy-"));
const file = join(dir, "tokens.toml");
const single = "bench-single-token-0123456789";
const last = newToken();
let text = "";
for (let i = 0; i < PRINCIPALS - 1; i++) text += `[principals.p${i}]\nrole = "reader"\ntoken_sha256 = "${tokenHash(newToken())}"\n`;
text += `[principals.ops]\nrole = "operator"\nworkers = ["w-*"]\ntoken_sha256 = "${tokenHash(last)}"\n` +
  "quotas = { leases = 4, mem_mb = 65536, gpus = 2, sealed_bytes = 1073741824, queued_jobs = 8 }\n";
writeFileSync(file, text);

const log = createLogger({ level: "error", format: "text", write: () => {} });
function app(principals: PrincipalGuard | undefined) {
  const host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: { run: () => new Promise(() => {}) },
    runnerKind: "cpu",
    log,
    onChange: () => {},
  });
  const bridge = bridgeFacade({
    version: "bench",
    hostname: "bench",
    gpus: () => MOCK_GPUS,
    stats: () => Promise.resolve(mockStats()),
    host,
    models: { catalog: builtinCatalog },
  });
  return { host, app: createApp({ token: single, log, bridge, ...(principals && { principals }) }) };
}
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString("en")}/s`;
const body = JSON.stringify({ gpu_id: "GPU-0", worker_id: "w-1", mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 });

for (
  const [name, guard, token] of [["single token", undefined, single], [
    `tokens file, ${PRINCIPALS} principals`,
    new PrincipalGuard(file),
    last,
  ]] as const
) {
  const { host, app: a } = app(guard);
  const auth = { Authorization: `Bearer ${token}` };
  let t0 = performance.now();
  for (let i = 0; i < N; i++) await (await a.request("/v1/gpus", { headers: auth })).arrayBuffer();
  const gets = rate(N, performance.now() - t0);
  t0 = performance.now();
  for (let i = 0; i < N / 4; i++) {
    const res = await a.request("/v1/leases", { method: "POST", headers: { ...auth, "content-type": "application/json" }, body });
    const { id } = (await res.json()) as { id: string };
    await (await a.request(`/v1/leases/${id}`, { method: "DELETE", headers: auth })).arrayBuffer();
  }
  const grants = rate(N / 4, performance.now() - t0);
  console.log(`${name}: GET /v1/gpus ${gets}; lease grant + release ${grants} pairs`);
  host.close();
}
rmSync(dir, { recursive: true, force: true });
