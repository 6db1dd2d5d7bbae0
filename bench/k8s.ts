/**
 * Allocate latency of the device plugin (`make bench-k8s`): the kubelet's request to the plugin's
 * reply over the Unix socket, each reply after its leases are granted and the CDI spec that
 * names them is written to disk. The bridge runs in this process on the mock GPUs, with the
 * stub kubelet; the leases are released between rounds (not timed). Target: p99 well under
 * 50 ms, since Allocate sits on every pod's start. ROUNDS=N changes the count (default 300).
 */
import { join } from "node:path";
import { createBridge } from "../src/app/bridge.ts";
import { parseCommand } from "../src/cli/options.ts";
import { mockBackend } from "../src/inventory/mock.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { createLogger } from "../src/util/log.ts";
import { StubKubelet } from "../mock/kubelet/stub.ts";
import { tempFolder } from "../test/helpers.ts";
import { quantile } from "./quantile.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 300);
const UUID = (i: number) => `GPU-00000000-0000-4000-8000-00000000000${i}`;
const dir = tempFolder("gbh-bench-k8s-");
const kubelet = new StubKubelet(join(dir, "kubelet"));
await kubelet.start();
const argv = ["serve", "--mock", "--no-api", "--state-dir", join(dir, "state"), "--cdi-dir", join(dir, "cdi")];
const c = parseCommand([...argv, "--kubelet-dir", kubelet.dir, "--k8s-resource", "cohesix.io/gpu", "--k8s-share", "4"], {});
if (c.kind !== "serve") throw new Error("expected serve");
const log = createLogger({ level: "error", write: () => {} });
// With the lease journal, as the daemon runs: each grant is journalled before the reply too.
const bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() });
while (kubelet.registrations.length === 0) await Bun.sleep(10);
const client = kubelet.plugin();

const cases: [string, string[][]][] = [
  ["1 device", [[`${UUID(0)}::0`]]],
  ["8 devices, one container (2 leases)", [[0, 1, 2, 3].flatMap((k) => [`${UUID(0)}::${k}`, `${UUID(1)}::${k}`])]],
  ["8 devices, 8 containers (8 leases)", [0, 1, 2, 3].flatMap((k) => [[`${UUID(0)}::${k}`], [`${UUID(1)}::${k}`]])],
];
console.log(`Allocate latency, ${ROUNDS} rounds each (request to reply, leases granted and journalled, CDI spec written)`);
for (const [name, requests] of cases) {
  const ms: number[] = [];
  for (let i = 0; i < ROUNDS + 10; i++) {
    const t0 = performance.now();
    await client.allocate(requests);
    const t = performance.now() - t0;
    if (i >= 10) ms.push(t); // the first rounds warm the JIT up
    for (const l of bridge.leases.live()) bridge.leases.release(l.id, "bench");
  }
  const p99 = quantile(ms, 0.99);
  console.log(
    `  ${name.padEnd(38)} p50 ${quantile(ms, 0.5).toFixed(2)} ms   p99 ${p99.toFixed(2)} ms   max ${
      Math.max(...ms).toFixed(2)
    } ms   target p99 < 50 ms: ${p99 < 50 ? "met" : "MISSED"}`,
  );
}
client.close();
await bridge.stop();
await kubelet.stop();
process.exit(0);
