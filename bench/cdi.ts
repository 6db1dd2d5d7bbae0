/**
 * `cdi apply` sits on every container's start path: the compiled binary applying one GPU to a
 * config.json against a compiled hello-world of the same Bun (the floor). Target: at most 1.5x,
 * for the steady state (the spec in the validated-spec cache, as on every start after the
 * first); the same with --no-cache (every spec parsed and validated) is printed beside it.
 * The spec folder holds what `cdi generate` writes for a fake two-GPU host (device nodes made
 * with mknod, so this needs root; without it a spec of /dev/null and /dev/zero nodes stands in).
 * Run with `make bench-cdi`; RUNS=N overrides the sample count.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { quantile } from "./quantile.ts";
import { buildFloor, freshCopy, interleaved } from "./against-floor.ts";
import { canMknod, discreteTree, generateArgs } from "../test/cdi/fake-tree.ts";

const repo = join(import.meta.dir, "..");
const bin = join(repo, "dist", "gpu-bridge-host");
const benchDir = join(repo, "dist", "bench");
const runs = Number(process.env.RUNS ?? 60);
const hello = buildFloor(benchDir);

const runDir = mkdtempSync(join(benchDir, "cdi-"));
process.on("exit", () => rmSync(runDir, { recursive: true, force: true }));
const specDir = join(runDir, "cdi");
mkdirSync(specDir);
let source: string;
if (canMknod) {
  const root = discreteTree();
  const gen = Bun.spawnSync([bin, ...generateArgs(root), "--output", join(specDir, "nvidia.yaml")]);
  if (gen.exitCode !== 0) throw new Error(`cdi generate failed: ${gen.stderr.toString()}`);
  source = "cdi generate on a fake two-GPU host (YAML)";
} else {
  writeFileSync(
    join(specDir, "nvidia.json"),
    JSON.stringify({
      cdiVersion: "0.5.0",
      kind: "nvidia.com/gpu",
      devices: [{ name: "0", containerEdits: { deviceNodes: [{ path: "/dev/nvidia0", hostPath: "/dev/null" }] } }],
      containerEdits: { env: ["NVIDIA_VISIBLE_DEVICES=void"], deviceNodes: [{ path: "/dev/nvidiactl", hostPath: "/dev/zero" }] },
    }),
  );
  source = "a stand-in spec of /dev/null and /dev/zero (not root: no mknod)";
}
// A config.json as podman writes it for a plain container (trimmed to the parts that matter).
const config = join(runDir, "config.json");
writeFileSync(
  config,
  JSON.stringify({
    ociVersion: "1.0.2-dev",
    process: {
      user: { uid: 0, gid: 0 },
      args: ["nvidia-smi"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "container=podman", "HOME=/root"],
      cwd: "/",
      capabilities: { bounding: ["CAP_CHOWN", "CAP_KILL"] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1048576, soft: 1048576 }],
    },
    root: { path: "/var/lib/containers/storage/overlay/merged" },
    hostname: "c0ffee",
    mounts: [
      "/proc",
      "/dev",
      "/dev/pts",
      "/dev/mqueue",
      "/sys",
      "/sys/fs/cgroup",
      "/dev/shm",
      "/etc/resolv.conf",
      "/etc/hosts",
      "/run/.containerenv",
      "/etc/hostname",
    ]
      .map((d) => ({ destination: d, type: "bind", source: `/run/x${d}`, options: ["rbind", "nosuid", "noexec", "nodev"] })),
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      resources: { devices: [{ allow: false, access: "rwm" }] },
    },
  }),
);

// The validated-spec cache in the run folder (the default is /run or $XDG_RUNTIME_DIR): the
// check below fills it, so the timed runs are what every container start after the first sees.
// The config.json comes on standard input, the default, as a runtime's hook passes it.
const cacheDir = join(runDir, "cache");
const args = ["cdi", "apply", "--spec-dir", specDir, "nvidia.com/gpu=0"];
const check = Bun.spawnSync([bin, ...args, "--cache-dir", cacheDir], { stdin: Bun.file(config) });
if (check.exitCode !== 0) throw new Error(`cdi apply failed: ${check.stderr.toString()}`);
const out = JSON.parse(check.stdout.toString());
if (!out.linux.devices.some((d: { path: string }) => d.path === "/dev/nvidia0")) throw new Error("cdi apply did not add /dev/nvidia0");
const uncached = Bun.spawnSync([bin, ...args, "--no-cache", "--input", config]);
if (uncached.stdout.toString() !== check.stdout.toString()) throw new Error("cdi apply --no-cache differs from the cached answer");

const helloCopy = freshCopy(runDir, hello, "hello");
const binCopy = freshCopy(runDir, bin, "gpu-bridge-host");
const warm = interleaved([helloCopy], [binCopy, ...args, "--cache-dir", cacheDir], runs, config);
const cold = interleaved([helloCopy], [binCopy, ...args, "--no-cache"], runs, config);
const ratio = quantile(warm.subject, 0.5) / quantile(warm.floor, 0.5);
const ratioNoCache = quantile(cold.subject, 0.5) / quantile(cold.floor, 0.5);
const line = (name: string, t: number[]) => `  ${name.padEnd(28)}median ${quantile(t, 0.5).toFixed(2)}  p90 ${quantile(t, 0.9).toFixed(2)}`;
console.log(`cdi apply over ${runs} runs each (wall time of a child process, ms); spec: ${source}`);
console.log(line("hello-world floor", warm.floor));
console.log(line("cdi apply (cached spec)", warm.subject));
console.log(`  ratio (median)              ${ratio.toFixed(3)}x  (target <= 1.5x: ${ratio <= 1.5 ? "met" : "MISSED"})`);
console.log(line("hello-world floor", cold.floor));
console.log(line("cdi apply --no-cache", cold.subject));
console.log(`  ratio (median)              ${ratioNoCache.toFixed(3)}x  (every spec parsed and validated: the first start after a change)`);
