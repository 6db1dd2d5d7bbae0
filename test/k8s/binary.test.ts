/**
 * The compiled binary (dist/gpu-bridge-host, `make build`) carries the plugin: the .proto text
 * is embedded and grpc-js runs inside it. It registers with the stub kubelet and answers
 * Allocate with a CDI device that its spec file holds.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { StubKubelet } from "../../mock/kubelet/stub.ts";
import { spawnBridge } from "../spawn.ts";
import { REPO, tempFolder, until } from "../helpers.ts";
import { serveArgs, UUID0 } from "./fixture.ts";

const BIN = join(REPO, "dist", "gpu-bridge-host");
const why = existsSync(BIN) ? null : "no dist/gpu-bridge-host (make build)";
if (why !== null) console.warn(`test/k8s/binary.test.ts: skipped: ${why}`);

let stop: (() => Promise<void>) | null = null;
afterEach(async () => {
  await stop?.();
  stop = null;
});

test.skipIf(why !== null)("the compiled binary registers, lists and allocates", async () => {
  const dir = tempFolder("gbh-k8s-bin-");
  const kubelet = new StubKubelet(join(dir, "kubelet"));
  await kubelet.start();
  const cdi = join(dir, "cdi");
  const child = spawnBridge([...serveArgs(dir, kubelet.dir), "--k8s"], [BIN]);
  stop = async () => {
    child.proc.kill();
    await child.proc.exited;
    await kubelet.stop();
  };
  await until(() => kubelet.registrations.length === 1, 10_000, `registration; the binary said: ${child.log()}`);
  const client = kubelet.plugin();
  const watch = client.watch();
  expect((await watch.until(() => true)).map((d) => d.ID)).toContain(UUID0);
  watch.cancel();
  const reply = await client.allocate([[UUID0]]);
  const name = reply.container_responses[0]!.cdi_devices[0]!.name;
  expect(name).toMatch(/^cohesix\/gpu=lease-/);
  const spec = JSON.parse(readFileSync(join(cdi, "gpu-bridge-host.json"), "utf8"));
  expect(spec.devices.map((d: { name: string }) => `${spec.kind}=${d.name}`)).toContain(name);
  client.close();
});
