/**
 * Fake host trees for `cdi generate`: real device nodes made with mknod (so stat reads true
 * majors and minors, 510 included), sysfs DRM links, mig-minors, driver files and a hook binary.
 * Device nodes need root: without it `canMknod` is false and the tests that need nodes skip
 * with a visible reason.
 */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { tempFolder } from "../helpers.ts";

export const canMknod = process.getuid?.() === 0;
export const SKIP_REASON = "device nodes need mknod, which needs root: skipped (run the tests as root to cover them)";
if (!canMknod) console.warn(`test/cdi: ${SKIP_REASON}`);

export function mknod(root: string, path: string, type: "c" | "b", major: number, minor: number): void {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  const r = Bun.spawnSync(["mknod", "-m", "666", full, type, String(major), String(minor)]);
  if (r.exitCode !== 0) throw new Error(`mknod ${full} failed: ${r.stderr.toString()}`);
}

export function file(root: string, path: string, text = ""): void {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
}

/** A discrete host: two GPUs (minors 0 and 1, buses 01 and 02), driver 555.0, uvm at major 510. */
export function discreteTree(o: { minors?: number[]; hook?: boolean } = {}): string {
  const root = tempFolder("cdi-host-");
  const minors = o.minors ?? [0, 1];
  minors.forEach((m) => mknod(root, `/dev/nvidia${m}`, "c", 195, m));
  mknod(root, "/dev/nvidiactl", "c", 195, 255);
  mknod(root, "/dev/nvidia-uvm", "c", 510, 0);
  mknod(root, "/dev/nvidia-uvm-tools", "c", 510, 1);
  // no /dev/nvidia-modeset: a control node that does not exist is left out
  mknod(root, "/dev/dri/card1", "c", 226, 1);
  mknod(root, "/dev/dri/renderD128", "c", 226, 128);
  mkdirSync(join(root, "/sys/bus/pci/devices/0000:01:00.0/drm/card1"), { recursive: true });
  mkdirSync(join(root, "/sys/bus/pci/devices/0000:01:00.0/drm/renderD128"), { recursive: true });
  mkdirSync(join(root, "/sys/bus/pci/devices/0000:01:00.0/drm/controlD64"), { recursive: true });
  const lib = "/usr/lib/x86_64-linux-gnu";
  for (
    const name of ["libcuda.so.555.0", "libnvidia-ml.so.555.0", "libnvidia-ptxjitcompiler.so.555.0", "libcuda.so.550.1", "libfoo.so.555.0"]
  ) {
    file(root, `${lib}/${name}`, "ELF");
  }
  symlinkSync("libcuda.so.555.0", join(root, lib, "libcuda.so.1"));
  file(root, "/lib/firmware/nvidia/555.0/gsp_ga10x.bin", "fw");
  file(root, "/lib/firmware/nvidia/550.1/gsp_ga10x.bin", "old fw");
  file(root, "/usr/bin/nvidia-smi", "#!");
  file(root, "/run/nvidia-persistenced/socket");
  if (o.hook !== false) {
    file(root, "/hook/nvidia-cdi-hook", "#!/bin/sh\n");
    chmodSync(join(root, "/hook/nvidia-cdi-hook"), 0o755);
  }
  return root;
}

/** MIG capability nodes and mig-minors for GPU minor `gpuMinor`, instances gi 1 and 3 with ci 0. */
/** `cdi generate --mock` reading everything (device nodes, driver files, sysfs, the hook) under `root`. */
export function generateArgs(root: string): string[] {
  return [
    "cdi",
    "generate",
    "--mock",
    "--dev-root",
    root,
    "--driver-root",
    root,
    "--sys-root",
    root,
    "--hook-path",
    `${root}/hook/nvidia-cdi-hook`,
  ];
}

export function addMig(root: string, gpuMinor: number): void {
  const lines = [
    `gpu${gpuMinor}/gi1/access 12`,
    `gpu${gpuMinor}/gi1/ci0/access 13`,
    `gpu${gpuMinor}/gi3/access 30`,
    `gpu${gpuMinor}/gi3/ci0/access 31`,
  ];
  file(root, "/proc/driver/nvidia-caps/mig-minors", ["config 1", "monitor 2", ...lines].join("\n") + "\n");
  for (const m of [12, 13, 30, 31]) mknod(root, `/dev/nvidia-caps/nvidia-cap${m}`, "c", 508, m);
}

/** A Jetson Orin: CSV files, nvhost nodes, the tegra libraries with a symlink, nv_tegra_release. */
export function jetsonTree(): { root: string; csvDir: string } {
  const root = tempFolder("cdi-jetson-");
  mknod(root, "/dev/nvhost-ctrl", "c", 507, 0);
  mknod(root, "/dev/nvhost-ctrl-gpu", "c", 507, 1);
  mknod(root, "/dev/nvmap", "c", 10, 125);
  const tegra = "/usr/lib/aarch64-linux-gnu/tegra";
  file(root, `${tegra}/libcuda.so.1.1`, "ELF");
  file(root, `${tegra}/libnvrm_gpu.so`, "ELF");
  symlinkSync("libcuda.so.1.1", join(root, tegra, "libcuda.so"));
  file(root, "/usr/share/nvidia/tegra/firmware/gpu.bin", "fw");
  file(root, "/etc/nv_tegra_release", "# R36 (release), REVISION: 3.0\n");
  const csvDir = join(root, "/etc/nvidia-container-runtime/host-files-for-container.d");
  file(
    root,
    "/etc/nvidia-container-runtime/host-files-for-container.d/l4t.csv",
    [
      "dev, /dev/nvhost-*",
      "dev,/dev/nvmap",
      "dev, /dev/nvgpu-absent",
      `lib, ${tegra}/libcuda.so.1.1`,
      `lib, ${tegra}/libnvrm_gpu.so`,
      `sym, ${tegra}/libcuda.so`,
      "dir, /usr/share/nvidia/tegra/firmware",
      "lib, /usr/lib/absent.so",
      "bogus, /dev/null",
      "no comma here",
    ].join("\n") + "\n",
  );
  file(root, "/etc/nvidia-container-runtime/host-files-for-container.d/notes.txt", "dev, /dev/nvmap\n");
  return { root, csvDir };
}
