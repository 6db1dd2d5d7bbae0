/**
 * `doctor` on the fake NVML and libcuda and on fake host trees: what it finds, what it calls a
 * failure, the fix it prints, and its exit status; the console probe on an in-memory console.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { memoryMockConsole } from "../../mock/console/server.ts";
import { bunFfi } from "../../ffi/bun.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { consoleCheck } from "../../src/doctor/console.ts";
import { type Check, type DoctorOptions, runDoctor } from "../../src/doctor/mod.ts";
import { agreement } from "../../src/doctor/native.ts";
import { shippedPtx } from "../../src/doctor/ptx-shipped.ts";
import { memoryConnect } from "../../src/runtime/memory.ts";
import { FakeClock, tempFolder } from "../helpers.ts";
import { canMknod, file, mknod, SKIP_REASON } from "../cdi/fake-tree.ts";
import { FAKE_CUDA, FAKE_NVML, fakeEnv, scriptFakes } from "../inventory/fakes.ts";
import { GENERATIONS, materialize } from "../inventory/jetson-trees.ts";

const roots: string[] = [];
const tmp = (prefix: string) => {
  const d = tempFolder(prefix);
  roots.push(d);
  return d;
};
afterEach(() => {
  for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true });
  scriptFakes({});
});

const uid = process.getuid?.() ?? 0;
const options = (root: string, o: Partial<DoctorOptions> = {}): DoctorOptions => ({
  backend: "auto",
  sysRoot: root,
  devRoot: root,
  stateDir: join(root, "state"),
  spoolMaxBytes: 1024 * 1024,
  cdiSpecDirs: DEFAULTS.cdiSpecDirs,
  console: null,
  timeoutMs: 500,
  ...o,
});
const deps = (env: Record<string, string> = fakeEnv) => ({
  env,
  adapter: () => Promise.resolve(bunFfi),
  connect: () => Promise.reject(new Error("no console in this test")),
  uid,
});
const find = (checks: readonly Check[], section: string, name: string | RegExp) =>
  checks.filter((c) => c.section === section && (typeof name === "string" ? c.name === name : name.test(c.name)));

/** A discrete host's /dev and /proc, as the fake server's two GPUs (minors 0 and 1) need them. */
function discreteHost(o: { uvm?: boolean; ctlMajor?: number } = {}): string {
  const root = tmp("doctor-host-");
  mknod(root, "/dev/nvidiactl", "c", o.ctlMajor ?? 195, 255);
  mknod(root, "/dev/nvidia0", "c", 195, 0);
  mknod(root, "/dev/nvidia1", "c", 195, 1);
  if (o.uvm !== false) {
    mknod(root, "/dev/nvidia-uvm", "c", 510, 0);
    mknod(root, "/dev/nvidia-uvm-tools", "c", 510, 1);
  }
  file(root, "/proc/devices", "Character devices:\n  1 mem\n195 nvidia-frontend\n510 nvidia-uvm\n\nBlock devices:\n  8 sd\n");
  return root;
}

describe.skipIf(!canMknod)(`a discrete host on the fakes${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("everything present: libraries, both backends agreeing, nodes, PTX; exit status ok", async () => {
    const root = discreteHost();
    const r = await runDoctor(options(root), deps());
    expect(r.checks.filter((c) => c.status === "fail")).toEqual([]);
    expect(r.ok).toBe(true);
    expect(find(r.checks, "libraries", "NVML")[0]).toMatchObject({ status: "ok", detail: expect.stringContaining("550.54.15") });
    expect(find(r.checks, "libraries", "GPU_BRIDGE_CUDA_LIB")[0]).toMatchObject({
      status: "ok",
      detail: expect.stringContaining(FAKE_CUDA),
    });
    expect(find(r.checks, "gpus", "NVML and CUDA agree")[0]!.status).toBe("ok");
    expect(find(r.checks, "device nodes", /./).map((c) => [c.name, c.status])).toEqual([
      ["/dev/nvidiactl", "ok"],
      ["/dev/nvidia0", "ok"],
      ["/dev/nvidia1", "ok"],
      ["/dev/nvidia-uvm", "ok"],
      ["/dev/nvidia-uvm-tools", "ok"],
    ]);
    expect(find(r.checks, "sharing", /VMM/).every((c) => c.status === "ok")).toBe(true);
    expect(find(r.checks, "sharing", / MIG$/).map((c) => c.detail)).toEqual(["disabled", "enabled"]);
  });

  test("a missing nvidia-uvm and a node with the wrong major fail, each with its fix", async () => {
    const root = discreteHost({ uvm: false, ctlMajor: 194 });
    const r = await runDoctor(options(root), deps());
    expect(r.ok).toBe(false);
    expect(find(r.checks, "device nodes", "/dev/nvidia-uvm")[0]).toMatchObject({
      status: "fail",
      fix: expect.stringContaining("modprobe nvidia-uvm"),
    });
    expect(find(r.checks, "device nodes", "/dev/nvidia-uvm-tools")[0]!.status).toBe("warn");
    expect(find(r.checks, "device nodes", "/dev/nvidiactl")[0]).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("expected 195:255"),
      fix: expect.stringContaining("stale"),
    });
  });

  test("an override that does not load is a failure naming the path, though the loader found another", async () => {
    const root = discreteHost();
    const r = await runDoctor(
      options(root),
      deps({ GPU_BRIDGE_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", GPU_BRIDGE_CUDA_LIB: FAKE_CUDA }),
    );
    expect(find(r.checks, "libraries", "GPU_BRIDGE_NVML_LIB")[0]).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("/nonexistent/libnvidia-ml.so.1"),
    });
    expect(r.ok).toBe(false);
  });

  test("a driver older than a module's PTX ISA fails that module on every GPU, with the versions", async () => {
    const root = discreteHost();
    scriptFakes({ cuda_version: 10020 });
    const r = await runDoctor(options(root), deps());
    const ptx = find(r.checks, "ptx", /^GPU-/);
    for (const m of shippedPtx()) {
      const lines = ptx.filter((c) => c.name.endsWith(m.name));
      expect(lines.length).toBe(2);
      // Independent of the verdict code: CUDA 10.2 knows PTX ISA up to 6.5.
      const [major, minor] = m.isa.split(".").map(Number);
      const known = major! * 10 + minor! <= 65;
      for (const c of lines) expect(c.status).toBe(known ? "ok" : "fail");
      if (!known) expect(lines[0]!.detail).toContain("this one is CUDA 10.2");
    }
  });

  test("a server without VMM or POSIX-fd handles is a warning, not a failure", async () => {
    const root = discreteHost();
    scriptFakes({ posix_fd: 0 });
    const r = await runDoctor(options(root), deps());
    expect(find(r.checks, "sharing", /VMM/).map((c) => c.status)).toEqual(["warn", "warn"]);
    expect(r.ok).toBe(true);
  });
});

test("agreement(): the same GPUs by UUID, by PCI when CUDA's UUIDs are zero, and each side's extras named", () => {
  const g = (uuid: string, pci: string) => ({ index: 0, name: "x", uuid, pci, cc: "8.0" });
  expect(agreement([g("GPU-a", "0000:01:00.0")], [g("GPU-a", "0000:01:00.0")]).same).toBe(true);
  expect(agreement([g("GPU-a", "0000:01:00.0")], [g("GPU-00000000-0000-0000-0000-000000000000", "0000:01:00.0")]).same).toBe(true);
  expect(agreement([g("GPU-a", "p1"), g("GPU-b", "p2")], [g("GPU-a", "p1"), g("GPU-c", "p3")]))
    .toEqual({ same: false, detail: "only NVML sees GPU-b; only CUDA sees GPU-c" });
});

describe("no driver at all", () => {
  test("libcuda missing is a failure; --mock skips the driver and passes", async () => {
    const root = tmp("doctor-none-");
    const none = { GPU_BRIDGE_NVML_LIB: "/nonexistent/a.so", GPU_BRIDGE_CUDA_LIB: "/nonexistent/b.so" };
    const r = await runDoctor(options(root), deps(none));
    // A real driver on the loader path would be found: then there is nothing to show.
    if (find(r.checks, "libraries", "libcuda")[0]!.status !== "ok") {
      expect(find(r.checks, "libraries", "libcuda")[0]).toMatchObject({ status: "fail", fix: expect.stringContaining("--mock") });
      expect(r.ok).toBe(false);
    }
    const m = await runDoctor(options(root, { backend: "mock" }), deps(none));
    expect(m.ok).toBe(true);
    expect(find(m.checks, "libraries", "native")[0]!.detail).toContain("--mock");
  });
});

for (const g of GENERATIONS) {
  describe.skipIf(!canMknod)(`${g.tree}: doctor on the Jetson tree${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
    test("finds the GPU through CUDA, checks its nodes, says NVML's absence is expected and what the VRAM policy means", async () => {
      const root = materialize(g);
      roots.push(root);
      scriptFakes({ jetson: g.fake });
      const env = g.tree === "orin-r36"
        ? { GPU_BRIDGE_NVML_LIB: FAKE_NVML, GPU_BRIDGE_CUDA_LIB: FAKE_CUDA }
        : { GPU_BRIDGE_NVML_LIB: "/nonexistent/libnvidia-ml.so.1", GPU_BRIDGE_CUDA_LIB: FAKE_CUDA };
      const r = await runDoctor(options(root), deps(env));
      const nvml = find(r.checks, "libraries", "NVML")[0]!;
      expect(nvml.status).toBe(g.tree === "orin-r36" ? "ok" : "info");
      expect(find(r.checks, "libraries", "libcuda")[0]!.detail).toContain(`CUDA ${g.cuda}`);
      const nodes = find(r.checks, "device nodes", /./);
      expect(nodes.map((c) => c.name)).toEqual(
        g.tree === "orin-r36"
          ? ["/dev/nvgpu/igpu0/ctrl", "/dev/nvgpu/igpu0/channel", "/dev/nvmap"]
          : ["/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu", "/dev/nvmap"],
      );
      expect(nodes.every((c) => c.status === "ok")).toBe(true);
      expect(find(r.checks, "sharing", /VRAM-only policy/)[0]!.detail).toMatch(/^not applicable: .*cannot promise: /);
      expect(find(r.checks, "sharing", /VMM/)[0]!.status).toBe("warn");
      // Each shipped module JITs here exactly when its target fits the GPU and its ISA this CUDA
      // (PTX ISA releases: 6.0 came with CUDA 9.0, 6.3 with 10.0, 6.5 with 10.2, 7.x with 11.x).
      const isaCuda = (isa: string) => {
        const [major, minor] = isa.split(".").map(Number);
        if (major === 6) return minor! <= 2 ? 90 + minor! : 100 + (minor! - 3);
        if (major === 7) return 110 + minor!;
        throw new Error(`add PTX ISA ${isa} to this test`);
      };
      const cuda = Number(g.cuda.replace(".", ""));
      for (const m of shippedPtx()) {
        const fits = Number(m.target.slice(3)) <= Number(g.cc.replace(".", "")) && isaCuda(m.isa) <= cuda;
        const line = find(r.checks, "ptx", new RegExp(`${m.name}$`)).find((c) => c.name.startsWith("GPU-0"))!;
        expect([m.name, line.status]).toEqual([m.name, fits ? "ok" : "fail"]);
      }
    });
  });
}

describe("the state folder and the spool's disk", () => {
  test("a folder others can write, one owned by another user, and a readable token are failures", async () => {
    const root = tmp("doctor-state-");
    const state = join(root, "state");
    mkdirSync(state, { mode: 0o700 });
    let r = await runDoctor(options(root, { backend: "mock" }), deps());
    expect(find(r.checks, "state", "state folder")[0]!.status).toBe("ok");
    chmodSync(state, 0o777);
    r = await runDoctor(options(root, { backend: "mock" }), deps());
    expect(find(r.checks, "state", "state folder")[0]).toMatchObject({ status: "fail", fix: `chmod 0700 ${state}` });
    chmodSync(state, 0o700);
    writeFileSync(join(state, "api-token"), "x", { mode: 0o644 });
    chmodSync(join(state, "api-token"), 0o644);
    r = await runDoctor(options(root, { backend: "mock" }), deps());
    expect(find(r.checks, "state", "api-token")[0]!.status).toBe("fail");
    if (uid === 0) {
      chownSync(state, 12345, 12345);
      r = await runDoctor(options(root, { backend: "mock" }), deps());
      expect(find(r.checks, "state", "state folder")[0]).toMatchObject({ status: "fail", detail: expect.stringContaining("uid 12345") });
    }
  });

  test("less free disk than the spool's cap fails, suggesting a smaller cap", async () => {
    const root = tmp("doctor-disk-");
    const r = await runDoctor(options(root, { backend: "mock", spoolMaxBytes: 2 ** 60 }), deps());
    expect(find(r.checks, "state", "spool disk")[0]).toMatchObject({ status: "fail", fix: expect.stringContaining("--spool-max-mb") });
    expect(r.ok).toBe(false);
  });
});

describe.skipIf(!canMknod)(`CDI specs against the host${canMknod ? "" : ` (${SKIP_REASON})`}`, () => {
  test("a spec naming an old driver's library and a node with other numbers is stale; a matching one passes", async () => {
    const root = discreteHost();
    file(root, "/usr/lib/libcuda.so.550.54.15", "ELF");
    const spec = (lib: string, major: number) =>
      JSON.stringify({
        cdiVersion: "0.5.0",
        kind: "nvidia.com/gpu",
        devices: [{
          name: "0",
          containerEdits: { deviceNodes: [{ path: "/dev/nvidia0", hostPath: join(root, "/dev/nvidia0"), type: "c", major, minor: 0 }] },
        }],
        containerEdits: { mounts: [{ hostPath: join(root, lib), containerPath: lib, options: ["ro", "nosuid", "nodev", "bind"] }] },
      });
    file(root, "/etc/cdi/good.json", spec("/usr/lib/libcuda.so.550.54.15", 195));
    file(root, "/var/run/cdi/stale.json", spec("/usr/lib/libcuda.so.535.1", 196));
    const r = await runDoctor(options(root), deps());
    expect(find(r.checks, "cdi", "/etc/cdi/good.json")[0]!.status).toBe("ok");
    const stale = find(r.checks, "cdi", "/var/run/cdi/stale.json")[0]!;
    expect(stale).toMatchObject({ status: "warn", fix: expect.stringContaining("cdi generate") });
    expect(stale.detail).toContain("library of driver 535.1; the driver is 550.54.15");
    expect(stale.detail).toContain("node /dev/nvidia0 is 195:0, the spec says 196:0");
  });
});

describe("the console probe", () => {
  const probe = { host: "vm", port: 31337, token: "secret-token", ticket: "", role: "queen" };

  test("AUTH and ATTACH acknowledged: ok; a wrong token: a failure pointing at --auth-token", async () => {
    const clock = new FakeClock();
    const { connect } = memoryMockConsole({ token: "secret-token" }, clock);
    // Read only: what reaches the console is AUTH and ATTACH, nothing else.
    const sent: string[] = [];
    const recording: typeof connect = async (host, port) => {
      const conn = await connect(host, port);
      return { ...conn, readable: conn.readable, write: (b) => (sent.push(new TextDecoder().decode(b)), conn.write(b)) };
    };
    expect(await consoleCheck(recording, probe, 500, clock)).toMatchObject({ status: "ok" });
    expect(sent.join("")).toContain("AUTH secret-token");
    expect(sent.join("")).toContain("ATTACH queen");
    expect(sent.join("")).not.toMatch(/ECHO|CAT|LS /);
    const bad = await consoleCheck(connect, { ...probe, token: "wrong" }, 500, clock);
    expect(bad).toMatchObject({ status: "fail", fix: expect.stringContaining("--auth-token") });
  });

  test("a console that accepts but never answers, or never accepts, fails after the timeout on the clock", async () => {
    for (const connect of [memoryConnect(() => {}), () => new Promise<never>(() => {})]) {
      const clock = new FakeClock();
      const pending = consoleCheck(connect as never, probe, 500, clock);
      for (let i = 0; i < 20 && clock.pending === 0; i++) await Promise.resolve();
      clock.advance(500);
      expect(await pending).toMatchObject({ status: "fail", detail: expect.stringContaining("within 500 ms") });
    }
  });
});

test("a FIFO named like a spec in /var/run/cdi is reported, never read (the read would block)", async () => {
  const root = tmp("doctor-fifo-");
  mkdirSync(join(root, "var/run/cdi"), { recursive: true });
  const r0 = Bun.spawnSync(["mkfifo", join(root, "var/run/cdi/trap.json")]);
  if (r0.exitCode !== 0) throw new Error("mkfifo failed");
  const r = await runDoctor(options(root, { backend: "mock" }), deps());
  expect(find(r.checks, "cdi", "/var/run/cdi/trap.json")[0]).toMatchObject({
    status: "warn",
    detail: expect.stringContaining("not a regular file"),
  });
});

test("a console that accepts only after the deadline is hung up on at once", async () => {
  const clock = new FakeClock();
  let closed = 0;
  let accept!: () => void;
  const late = () =>
    new Promise<never>((resolve) => {
      accept = () => {
        const conn = {
          write: () => Promise.resolve(),
          readable: { [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => {}) }) },
          close: () => void closed++,
        };
        (resolve as (c: unknown) => void)(conn);
      };
    });
  const pending = consoleCheck(late as never, { host: "vm", port: 1, token: "t", ticket: "", role: "queen" }, 500, clock);
  clock.advance(500);
  expect(await pending).toMatchObject({ status: "fail" });
  accept();
  for (let i = 0; i < 20 && closed === 0; i++) await Promise.resolve();
  expect(closed).toBeGreaterThan(0);
});

test("--mock: the VRAM-only policy is said not to apply, never called enforced", async () => {
  const root = tmp("doctor-mock-");
  const r = await runDoctor(options(root, { backend: "mock" }), deps());
  const policy = find(r.checks, "sharing", /VRAM-only policy/);
  expect(policy.map((c) => c.detail)).toEqual([expect.stringContaining("not applicable")]);
});
