/**
 * A non-JavaScript kubelet: test/consumer/kubelet.py on Debian's python3-grpcio (gRPC's C core,
 * as strict about HTTP/2 trailers as the kubelet's grpc-go) drives registration, ListAndWatch,
 * Allocate (its reply and its grpc-status on failure), PodResources release, a kubelet restart
 * and a health loss and recovery. `make test` installs python3-grpcio (scripts/k8s-interop.sh);
 * where it cannot be installed, the test says so and skips.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO, tempFolder, until } from "../helpers.ts";
import { type K8sRig, k8sRig, RESOURCE, UUID0, UUID1 } from "./fixture.ts";

const PY = "/usr/bin/python3";
const why = spawnSync(PY, ["-c", "import grpc"]).status === 0 ? null : `${PY} cannot import grpc (run scripts/k8s-interop.sh)`;
if (why !== null) console.warn(`test/k8s/interop.test.ts: skipped: ${why}`);

type Event = { event: string; [k: string]: unknown };
let py: ReturnType<typeof Bun.spawn> | null = null;
const events: Event[] = [];
let rig: K8sRig | null = null;

function send(cmd: object): void {
  const stdin = py!.stdin as import("bun").FileSink;
  stdin.write(JSON.stringify(cmd) + "\n");
  stdin.flush();
}

/** The first event after `from` matching `pred`. */
async function next(pred: (e: Event) => boolean, from: number, ms = 5000): Promise<Event> {
  let hit: Event | undefined;
  await until(() => (hit = events.slice(from).find(pred)) !== undefined, ms, `a Python event; got ${JSON.stringify(events.slice(from))}`);
  return hit!;
}

beforeAll(async () => {
  if (why !== null) return;
  const dir = join(tempFolder("gbh-k8s-py-"), "kubelet");
  py = Bun.spawn([PY, join(REPO, "test", "consumer", "kubelet.py"), dir, RESOURCE], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  void (async () => {
    let buf = "";
    for await (const chunk of py!.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    }
  })();
  await next((e) => e.event === "ready", 0, 10_000);
  rig = await k8sRig([], { kubeletDir: dir });
});

afterAll(async () => {
  await rig?.bridge.stop();
  if (py !== null) {
    send({ cmd: "quit" });
    await py.exited;
  }
});

test.skipIf(why !== null)("python3-grpcio sees registration, the device list, and Allocate's reply and grpc-status", async () => {
  const reg = await next((e) => e.event === "registered", 0);
  expect(reg).toMatchObject({ version: "v1beta1", resource_name: RESOURCE, get_preferred_allocation_available: true });
  const list = await next((e) => e.event === "devices", 0);
  expect(list.devices).toEqual([{ ID: UUID0, health: "Healthy", numa: [0] }, { ID: UUID1, health: "Healthy", numa: [1] }]);

  let mark = events.length;
  send({ cmd: "allocate", requests: [[UUID1]] });
  const ok = await next((e) => e.event === "allocated" || e.event === "error", mark);
  const lease = rig!.bridge.leases.live()[0]!;
  expect(ok).toEqual({
    event: "allocated",
    status: "OK",
    responses: [{ envs: {}, mounts: 0, devices: 0, annotations: {}, cdi_devices: [`cohesix/gpu=${lease.id}`] }],
  });

  mark = events.length;
  send({ cmd: "allocate", requests: [[UUID0], ["GPU-none"]] });
  const bad = await next((e) => e.event === "allocated" || e.event === "error", mark);
  expect(bad).toMatchObject({ event: "error", code: "NOT_FOUND" });
  expect(String(bad.details)).toContain("GPU-none");
  // The failure is followed by a fresh list.
  await next((e) => e.event === "devices", mark);
});

test.skipIf(why !== null)("release through the Python PodResources, a health loss and recovery, a restart", async () => {
  const lease = rig!.bridge.leases.live()[0]!;
  send({ cmd: "pods", containers: [[UUID1]] });
  await Bun.sleep(600);
  expect(rig!.bridge.leases.get(lease.id)?.state).toBe("ACTIVE");
  send({ cmd: "pods", containers: [] });
  await until(() => rig!.bridge.leases.get(lease.id)?.state === "RELEASED", 3000, "the release");

  let mark = events.length;
  rig!.backend.silent.add("GPU-0");
  await next((e) => e.event === "devices" && (e.devices as { ID: string; health: string }[])[0]!.health === "Unhealthy", mark, 2000);
  mark = events.length;
  rig!.backend.silent.delete("GPU-0");
  await next((e) => e.event === "devices" && (e.devices as { health: string }[]).every((d) => d.health === "Healthy"), mark, 2000);

  mark = events.length;
  send({ cmd: "restart" });
  await next((e) => e.event === "registered", mark, 5000);
  await next((e) => e.event === "devices", mark, 5000);
});
