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

/**
 * A spec the size of a real multi-GPU host's (synthetic, in nvidia-ctk's shape): 8 GPUs in MIG
 * mode, 7 instances each (two nodes per instance), 40 driver libraries; about 38 KB of YAML,
 * where the generated two-GPU spec above is 6 KB. Nodes carry type and major, so no stat.
 */
function bigSpec(): string {
  const node = (path: string, major: number, minor: number, mode: number, perms: string) =>
    `        - path: ${path}\n          hostPath: ${path}\n          type: c\n          major: ${major}\n          minor: ${minor}\n          fileMode: ${mode}\n          permissions: ${perms}\n          gid: 0\n`;
  let out = "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n";
  for (let g = 0; g < 8; g++) {
    out += `  - name: "${g}"\n    containerEdits:\n      deviceNodes:\n${node(`/dev/nvidia${g}`, 195, g, 438, "rwm")}`;
    for (let m = 0; m < 7; m++) {
      const cap = g * 20 + m * 2 + 1;
      out += `  - name: "${g}:${m}"\n    containerEdits:\n      deviceNodes:\n${node(`/dev/nvidia${g}`, 195, g, 438, "rwm")}${
        node(`/dev/nvidia-caps/nvidia-cap${cap}`, 508, cap, 292, "r")
      }`;
    }
  }
  out += `containerEdits:\n  env:\n    - NVIDIA_VISIBLE_DEVICES=void\n  deviceNodes:\n${
    node("/dev/nvidiactl", 195, 255, 438, "rwm")
  }  mounts:\n`;
  for (let i = 0; i < 40; i++) {
    const lib = `/usr/lib/x86_64-linux-gnu/libnvidia-part${i}.so.555.42.06`;
    out +=
      `    - hostPath: ${lib}\n      containerPath: ${lib}\n      options:\n        - ro\n        - nosuid\n        - nodev\n        - rbind\n        - rprivate\n`;
  }
  return out;
}
const bigDir = join(runDir, "big");
mkdirSync(bigDir);
writeFileSync(join(bigDir, "nvidia.yaml"), bigSpec());
const bigArgs = ["cdi", "apply", "--spec-dir", bigDir, "nvidia.com/gpu=0:0"];
const bigCache = join(runDir, "big-cache");
const bigCheck = Bun.spawnSync([bin, ...bigArgs, "--cache-dir", bigCache], { stdin: Bun.file(config) });
if (bigCheck.exitCode !== 0) throw new Error(`cdi apply (big spec) failed: ${bigCheck.stderr.toString()}`);

const helloCopy = freshCopy(runDir, hello, "hello");
const binCopy = freshCopy(runDir, bin, "gpu-bridge-host");
const line = (name: string, t: number[]) => `  ${name.padEnd(28)}median ${quantile(t, 0.5).toFixed(2)}  p90 ${quantile(t, 0.9).toFixed(2)}`;
const ratioOf = (r: { floor: number[]; subject: number[] }) => quantile(r.subject, 0.5) / quantile(r.floor, 0.5);
function report(title: string, subject: string, r: { floor: number[]; subject: number[] }, verdict: string): void {
  console.log(title);
  console.log(line("hello-world floor", r.floor));
  console.log(line(subject, r.subject));
  console.log(`  ratio (median)              ${ratioOf(r).toFixed(3)}x  (${verdict})`);
}
console.log(`cdi apply over ${runs} runs each (wall time of a child process, ms), config.json on stdin`);
const warm = interleaved([helloCopy], [binCopy, ...args, "--cache-dir", cacheDir], runs, config);
const ratio = ratioOf(warm);
report(`spec: ${source}`, "cdi apply (cached spec)", warm, `target <= 1.5x: ${ratio <= 1.5 ? "met" : "MISSED"}`);
const cold = interleaved([helloCopy], [binCopy, ...args, "--no-cache"], runs, config);
report("", "cdi apply --no-cache", cold, "every spec parsed and validated: the first start after a change");
const bigWarm = interleaved([helloCopy], [binCopy, ...bigArgs, "--cache-dir", bigCache], runs, config);
report("spec: 8 GPUs in MIG mode, 61 devices, 38 KB of YAML (synthetic)", "cdi apply (cached spec)", bigWarm, "cached");
const bigCold = interleaved([helloCopy], [binCopy, ...bigArgs, "--no-cache"], runs, config);
report("", "cdi apply --no-cache", bigCold, "every spec parsed and validated");
