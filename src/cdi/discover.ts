/**
 * What a CDI spec needs from the host, read under three roots so tests use fake trees: device
 * nodes under `devRoot`, driver files under `driverRoot`, `/sys` and `/proc` under `sysRoot`.
 * Every path returned is the container's path (the root stripped); the host path is root + it.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { type HostNode, NotADeviceError, statNode } from "./devnode.ts";
import type { CdiDeviceNode, CdiMount } from "./schema.ts";

export interface Roots {
  readonly devRoot: string;
  readonly driverRoot: string;
  readonly sysRoot: string;
  /** Reads a device node in place of `lstat` (the mock GPUs' table, mock-nodes.ts); undefined: statNode. */
  readonly statNode?: (hostPath: string) => HostNode | null;
}

/** `root` + `path` ("/" adds nothing). */
export const under = (root: string, path: string) => (root === "/" || root === "" ? path : join(root, path));

/** Mount options of nvidia-ctk 1.18+ for files and folders, and for sockets. */
export const MOUNT_OPTIONS = ["ro", "nosuid", "nodev", "rbind", "rprivate"] as const;
export const SOCKET_OPTIONS = ["nosuid", "nodev", "rbind", "rprivate", "noexec"] as const;

/** The device node at container path `path` as the host has it, or null when absent. */
export function deviceNode(roots: Roots, path: string): CdiDeviceNode | null {
  const hostPath = under(roots.devRoot, path);
  let node: HostNode | null;
  try {
    node = (roots.statNode ?? statNode)(hostPath);
  } catch (error) {
    if (error instanceof NotADeviceError) return null;
    throw error;
  }
  if (node === null) return null;
  return {
    path,
    ...(hostPath !== path && { hostPath }),
    type: node.type,
    major: node.major,
    minor: node.minor,
    fileMode: node.fileMode,
    permissions: "rwm",
    gid: node.gid,
  };
}

/** The control nodes that exist, in nvidia-ctk's order. */
export function controlNodes(roots: Roots): CdiDeviceNode[] {
  return ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"]
    .map((p) => deviceNode(roots, p))
    .filter((n): n is CdiDeviceNode => n !== null);
}

/** The GPU's DRM nodes (`card*`, `renderD*`) for its PCI bus id, from sysfs. */
export function drmNodes(roots: Roots, pciBusId: string | null): CdiDeviceNode[] {
  if (pciBusId === null) return [];
  let names: string[];
  try {
    names = readdirSync(under(roots.sysRoot, `/sys/bus/pci/devices/${pciBusId}/drm`));
  } catch {
    return [];
  }
  return names
    .filter((n) => /^(card|renderD)\d+$/.test(n))
    .sort((
      a,
      b,
    ) => (a.startsWith("card") === b.startsWith("card") ? a.localeCompare(b, "en", { numeric: true }) : a.startsWith("card") ? -1 : 1))
    .map((n) => deviceNode(roots, `/dev/dri/${n}`))
    .filter((n): n is CdiDeviceNode => n !== null);
}

/**
 * MIG capability minors from `/proc/driver/nvidia-caps/mig-minors`: lines such as
 * `gpu0/gi1/access 12` and `gpu0/gi1/ci0/access 13`, keyed by the text before the space.
 */
export function migMinors(roots: Roots): Map<string, number> {
  const map = new Map<string, number>();
  let text: string;
  try {
    text = readFileSync(under(roots.sysRoot, "/proc/driver/nvidia-caps/mig-minors"), "utf8");
  } catch {
    return map;
  }
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\d+)$/.exec(line.trim());
    if (m !== null) map.set(m[1]!, Number(m[2]));
  }
  return map;
}

/** The folders nvidia-ctk searches for driver libraries. */
const LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"];
/** Names of NVIDIA's driver libraries (a library of another vendor never matches). */
const DRIVER_LIB =
  /^(libcuda|libcudadebugger|libnvidia-[a-z0-9_-]+|libnvcuvid|libnvoptix|libEGL_nvidia|libGLESv1_CM_nvidia|libGLESv2_nvidia|libGLX_nvidia|libvdpau_nvidia)\.so\./;
const TOOLS = [
  "/usr/bin/nvidia-smi",
  "/usr/bin/nvidia-debugdump",
  "/usr/bin/nvidia-persistenced",
  "/usr/bin/nvidia-cuda-mps-control",
  "/usr/bin/nvidia-cuda-mps-server",
];
const SOCKETS = ["/run/nvidia-persistenced/socket", "/run/nvidia-fabricmanager/socket", "/tmp/nvidia-mps"];

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/** Driver libraries named `*.so.<driver version>`, one per name (the first folder wins). */
export function driverLibraries(roots: Roots, driverVersion: string): string[] {
  const seen = new Set<string>();
  const found: string[] = [];
  for (const dir of LIB_DIRS) {
    let names: string[];
    try {
      names = readdirSync(under(roots.driverRoot, dir)).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (!DRIVER_LIB.test(name) || !name.endsWith(`.so.${driverVersion}`) || seen.has(name)) continue;
      if (!isFile(under(roots.driverRoot, `${dir}/${name}`))) continue;
      seen.add(name);
      found.push(`${dir}/${name}`);
    }
  }
  return found;
}

/** The GSP firmware files of this driver version. */
export function gspFirmware(roots: Roots, driverVersion: string): string[] {
  const dir = `/lib/firmware/nvidia/${driverVersion}`;
  try {
    return readdirSync(under(roots.driverRoot, dir)).filter((n) => /^gsp.*\.bin$/.test(n)).sort().map((n) => `${dir}/${n}`);
  } catch {
    return [];
  }
}

/** `nvidia-smi` and friends that exist. */
export const driverTools = (roots: Roots) => TOOLS.filter((p) => isFile(under(roots.driverRoot, p)));

/** The persistenced, fabric-manager and MPS sockets (or folder) that exist. */
export const driverSockets = (roots: Roots) => SOCKETS.filter((p) => existsSync(under(roots.driverRoot, p)));

/** A read-only bind mount of `path` under the driver root. */
export const fileMount = (roots: Roots, path: string, options: readonly string[] = MOUNT_OPTIONS): CdiMount => ({
  hostPath: under(roots.driverRoot, path),
  containerPath: path,
  options: [...options],
});

/** Where a symlink under the driver root points, or null. */
export function linkTarget(roots: Roots, path: string): string | null {
  try {
    return readlinkSync(under(roots.driverRoot, path));
  } catch {
    return null;
  }
}
