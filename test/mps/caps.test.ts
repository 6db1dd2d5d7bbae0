/**
 * `serve --mps --cdi-dir`: a lease's CDI device carries its enforced cap, checked the way a
 * container runtime would see it (`cdi validate`, then `cdi apply` to an OCI config.json); MIG
 * leases by UUID through the API get exactly their MIG device's nodes.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { startApi } from "../../src/app/daemon.ts";
import type { CdiSpec } from "../../src/cdi/schema.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { selectBackend } from "../../src/inventory/mod.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import type { InventoryBackend } from "../../src/inventory/types.ts";
import { main } from "../../src/main.ts";
import { mpsFolders } from "../../src/mps/daemons.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { memoryLogger, memoryStdio, tempFolder } from "../helpers.ts";
import { addMig, canMknod, discreteTree, SKIP_REASON } from "../cdi/fake-tree.ts";
import { fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { control, FAKE_MPS } from "./helpers.ts";

const TOKEN = "tok-0123456789abcdef";
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const savedEnv = { ...process.env };
afterEach(() => {
  for (const k of ["GPU_BRIDGE_MPS_CONTROL", "GPU_BRIDGE_NVML_LIB", "GPU_BRIDGE_CUDA_LIB"]) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

async function serve(
  args: string[],
  backend: (o: { backend: string; sysRoot: string }) => Promise<InventoryBackend>,
  state = tempFolder("caps-state-"),
) {
  const cdiDir = tempFolder("caps-cdi-");
  process.env.GPU_BRIDGE_MPS_CONTROL = FAKE_MPS;
  const c = parseCommand(
    ["serve", "--listen", "127.0.0.1:0", "--api-token", TOKEN, "--state-dir", state, "--cdi-dir", cdiDir, ...args],
    {},
  );
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log, lines } = memoryLogger();
  const runtime = bunRuntime();
  const inv = await backend(c.options);
  const bridge = await createBridge(c.options, { runtime, log, backend: inv }, { noJournal: true });
  const api = await startApi(c.options, bridge, { runtime, log });
  const base = `http://127.0.0.1:${api.port}`;
  const lease = async (body: Record<string, unknown>) => {
    const res = await fetch(`${base}/v1/leases`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ worker_id: "w", mem_mb: 512, streams: 4, ttl_s: 60, ...body }),
    });
    return { status: res.status, body: await res.json() as Record<string, unknown> & { error?: { message: string; field?: string } } };
  };
  const spec = () => JSON.parse(readFileSync(join(cdiDir, "gpu-bridge-host.json"), "utf8")) as CdiSpec;
  const stop = async () => {
    await api.close();
    await bridge.stop();
    inv.close();
  };
  return { state, cdiDir, lease, spec, stop, lines, base };
}

/** `cdi apply` of `device` from `cdiDir` to an image's config.json that tries to lift the cap itself. */
async function applyTo(cdiDir: string, device: string) {
  const dir = tempFolder("caps-oci-");
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      ociVersion: "1.0.2",
      process: { env: ["PATH=/usr/bin", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=80G", "CUDA_MPS_PIPE_DIRECTORY=/elsewhere"], cwd: "/" },
      root: { path: "rootfs" },
      mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    }),
  );
  const t = memoryStdio();
  const args = ["cdi", "apply", "--cache-dir", join(dir, "cache"), "--spec-dir", cdiDir, "--input", join(dir, "config.json")];
  const code = await main([...args, "--output", join(dir, "out.json"), device], {}, t.io);
  if (code !== 0) throw new Error(`cdi apply failed: ${t.err.join("")}`);
  return JSON.parse(readFileSync(join(dir, "out.json"), "utf8")) as {
    process: { env: string[] };
    mounts: { destination: string; source: string; options?: string[] }[];
    linux: { devices: { path: string; major: number; minor: number }[] };
  };
}

describe("serve --mps", () => {
  test("each GPU gets a daemon; a lease's device is an MPS client capped at its memory and SM share, as a runtime applies it", async () => {
    const b = await serve(["--mock", "--mps", "--max-streams-per-gpu", "16"], () => Promise.resolve(mockBackend()));
    try {
      const pipe0 = mpsFolders(b.state, "GPU-0").pipe;
      expect(existsSync(join(pipe0, "control"))).toBe(true);
      expect(existsSync(join(mpsFolders(b.state, "GPU-1").pipe, "control"))).toBe(true);
      const quarter = await b.lease({ gpu_id: "GPU-0", worker_id: "quarter" });
      expect(quarter.status).toBe(201);
      const whole = await b.lease({ gpu_id: "GPU-1", worker_id: "whole", streams: 16, mem_mb: 2048 });
      const dev = (id: unknown) => b.spec().devices.find((d) => d.name === id)!.containerEdits;
      expect(dev(quarter.body.id).env).toEqual([
        `GPU_BRIDGE_LEASE_ID=${quarter.body.id}`,
        "GPU_BRIDGE_SHARE_SOCKET=/run/gpu-bridge/share.sock",
        "GPU_BRIDGE_SHARE_TOKEN_FILE=/run/gpu-bridge/share.token",
        "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=512M",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25",
      ]);
      expect(dev(whole.body.id).env).toEqual([
        `GPU_BRIDGE_LEASE_ID=${whole.body.id}`,
        "GPU_BRIDGE_SHARE_SOCKET=/run/gpu-bridge/share.sock",
        "GPU_BRIDGE_SHARE_TOKEN_FILE=/run/gpu-bridge/share.token",
        "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=2048M",
      ]);
      // What the bridge wrote passes the validator a user runs.
      const v = memoryStdio();
      expect(await main(["cdi", "validate", join(b.cdiDir, "gpu-bridge-host.json")], {}, v.io)).toBe(0);
      // And a runtime applying it gives the container the cap, over whatever the image set.
      const oci = await applyTo(b.cdiDir, String(quarter.body.cdi_device));
      // The image's own values are replaced in place; nothing is left to lift the cap.
      expect(oci.process.env.slice(0, 3)).toEqual([
        "PATH=/usr/bin",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=512M",
        "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps",
      ]);
      const env = new Map(oci.process.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
      expect(env.get("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT")).toBe("0=512M");
      expect(env.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE")).toBe("25");
      expect(env.get("CUDA_MPS_PIPE_DIRECTORY")).toBe("/tmp/nvidia-mps");
      expect(oci.process.env.filter((e) => e.startsWith("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="))).toHaveLength(1);
      const mps = oci.mounts.filter((m) => m.destination === "/tmp/nvidia-mps");
      expect(mps).toEqual([{ destination: "/tmp/nvidia-mps", source: pipe0, options: ["nosuid", "nodev", "rbind", "rprivate", "noexec"] }]);
      expect(oci.linux.devices.map((d) => d.path)).toContain("/dev/nvidia0");
      expect(oci.linux.devices.map((d) => d.path)).not.toContain("/dev/nvidia1");
    } finally {
      await b.stop();
    }
    // The daemons this bridge started are gone with it.
    for (const gpu of ["GPU-0", "GPU-1"]) expect(existsSync(join(mpsFolders(b.state, gpu).pipe, "control"))).toBe(false);
  });

  test("a GPU whose daemon is refused gives its leases no CDI device (a cap that cannot hold is not handed out)", async () => {
    const state = tempFolder("caps-pre-");
    // GPU-1's pipe folder cannot be made: a file is in its place.
    Bun.spawnSync(["mkdir", "-p", join(mpsFolders(state, "GPU-1").pipe, "..")]);
    writeFileSync(mpsFolders(state, "GPU-1").pipe, "");
    const b = await serve(["--mock", "--mps"], () => Promise.resolve(mockBackend()), state);
    try {
      const ok = await b.lease({ gpu_id: "GPU-0", worker_id: "a" });
      const bad = await b.lease({ gpu_id: "GPU-1", worker_id: "b" });
      expect(ok.body.cdi_device).toBe(`cohesix/gpu=${ok.body.id}`);
      expect(bad.status).toBe(201);
      expect(bad.body.cdi_device).toBeUndefined();
      expect(b.spec().devices.some((d) => d.name === bad.body.id)).toBe(false);
      expect(b.lines.some((l) => l.includes(`Lease ${bad.body.id} has no CDI device: --mps is on and GPU-1 has no MPS control daemon:`)))
        .toBe(
          true,
        );
    } finally {
      await b.stop();
    }
  });

  test("a daemon already running for a GPU is adopted and outlives the bridge", async () => {
    const state = tempFolder("caps-adopt-");
    expect(control(state, "GPU-0", ["-d"]).code).toBe(0);
    try {
      const b = await serve(["--mock", "--mps"], () => Promise.resolve(mockBackend()), state);
      expect(b.lines.some((l) => l.includes("MPS control daemon of GPU-0 adopted"))).toBe(true);
      await b.stop();
      expect(control(state, "GPU-0", [], "get_server_list\n").code).toBe(0);
      expect(control(state, "GPU-1", [], "get_server_list\n").code).toBe(1);
    } finally {
      control(state, "GPU-0", [], "quit\n");
    }
  });
});

describe.skipIf(!canMknod)(`MIG leases through the API (fake NVML: GPU-1 in MIG mode)${canMknod ? "" : ` [${SKIP_REASON}]`}`, () => {
  test("a MIG UUID is leased alone and its device holds exactly that MIG device's nodes; unknown is 404, taken is 409", async () => {
    scriptFakes({});
    const root = discreteTree();
    addMig(root, 1);
    Object.assign(process.env, fakeEnv);
    const b = await serve(
      ["--backend", "nvml", "--sys-root", root, "--cdi-root", root, "--mps"],
      (o) => selectBackend({ backend: "nvml", sysRoot: o.sysRoot }),
    );
    try {
      const migA = "MIG-99999999-8888-7777-6666-55554444bbb1";
      const migB = "MIG-99999999-8888-7777-6666-55554444bbb2";
      const a = await b.lease({ gpu_id: migA, worker_id: "a" });
      expect(a.status).toBe(201);
      expect(a.body).toMatchObject({ gpu_id: "GPU-1", mig_uuid: migA, cdi_device: `cohesix/gpu=${a.body.id}` });
      const dev = b.spec().devices.find((d) => d.name === a.body.id)!.containerEdits;
      expect(dev.deviceNodes!.map((n) => [n.path, n.major, n.minor])).toEqual([
        ["/dev/nvidia1", 195, 1],
        ["/dev/nvidia-caps/nvidia-cap12", 508, 12],
        ["/dev/nvidia-caps/nvidia-cap13", 508, 13],
      ]);
      // The MIG partition is the cap: no MPS client edits on it (GPU-1 has no daemon in MIG mode).
      expect(dev.env).toEqual([
        `GPU_BRIDGE_LEASE_ID=${a.body.id}`,
        "GPU_BRIDGE_SHARE_SOCKET=/run/gpu-bridge/share.sock",
        "GPU_BRIDGE_SHARE_TOKEN_FILE=/run/gpu-bridge/share.token",
      ]);
      expect(b.lines.some((l) => l.includes("No MPS for GPU-1: GPU-1 is in MIG mode"))).toBe(true);
      const oci = await applyTo(b.cdiDir, String(a.body.cdi_device));
      expect(oci.linux.devices.map((d) => d.path).filter((p) => p.startsWith("/dev/nvidia-caps/"))).toEqual([
        "/dev/nvidia-caps/nvidia-cap12",
        "/dev/nvidia-caps/nvidia-cap13",
      ]);
      const bLease = await b.lease({ gpu_id: migB, worker_id: "b" });
      expect(b.spec().devices.find((d) => d.name === bLease.body.id)!.containerEdits.deviceNodes!.map((n) => n.minor)).toEqual([1, 30, 31]);

      const taken = await b.lease({ gpu_id: migA, worker_id: "c" });
      expect(taken.status).toBe(409);
      expect(taken.body.error!.message).toContain(`MIG device ${migA} is taken: lease ${a.body.id} holds it`);
      expect(taken.body.error!.field).toBe("gpu_id");
      const unknown = await b.lease({ gpu_id: "MIG-00000000-0000-0000-0000-000000000000", worker_id: "d" });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error!.message).toContain(`this host's are ${migA}, ${migB}`);
      const whole = await b.lease({ gpu_id: "GPU-1", worker_id: "e" });
      expect(whole.status).toBe(409);
      // GPU-0 is whole and under MPS: capped as usual.
      const g0 = await b.lease({ gpu_id: "GPU-0", worker_id: "f" });
      expect(b.spec().devices.find((d) => d.name === g0.body.id)!.containerEdits.env).toContain("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=512M");
    } finally {
      await b.stop();
    }
  });
});
