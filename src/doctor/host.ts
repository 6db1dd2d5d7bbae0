/**
 * The host around the driver: device nodes (present, character devices, the right majors, and
 * open-able by this user), the state folder's ownership and modes, and free disk for the spool.
 * Device nodes are read under `devRoot` and /proc under `sysRoot`, so tests use fake trees.
 */
import { accessSync, constants, existsSync, readFileSync, statfsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { type HostNode, NotADeviceError, statNode } from "../cdi/devnode.ts";
import { type Check, check } from "./types.ts";
import { under } from "../cdi/discover.ts";

/** Character majors by driver name, from /proc/devices. */
export function procDevices(sysRoot: string): Map<string, number> {
  const map = new Map<string, number>();
  let text = "";
  try {
    text = readFileSync(under(sysRoot, "/proc/devices"), "utf8");
  } catch {
    return map;
  }
  const chars = text.split(/^Block devices:/m)[0]!;
  for (const m of chars.matchAll(/^\s*(\d+)\s+(\S+)\s*$/gm)) map.set(m[2]!, Number(m[1]));
  return map;
}

/** A node the bridge needs: its path and, where the number is fixed or registered, its major and minor. */
export interface NodeWant {
  readonly path: string;
  readonly major?: number;
  readonly minor?: number;
  /** Needed for the given flags (else a problem is a warning). */
  readonly needed: boolean;
  readonly why: string;
  /** What to do when it is missing. */
  readonly fix: string;
}

const LOAD_NVIDIA = "load the driver (modprobe nvidia; nvidia-modprobe -c=0 creates the nodes where udev does not)";
const LOAD_UVM = "load nvidia-uvm (modprobe nvidia-uvm, or nvidia-modprobe -u -c=0)";
const JETSON = "the GPU driver creates these at boot: check dmesg for nvgpu/nvmap errors and that the L4T core packages match the kernel";

/** The nodes of a discrete host: nvidiactl, one per GPU (by minor), nvidia-uvm (its major from /proc/devices). */
export function discreteNodes(sysRoot: string, minors: readonly (number | null)[]): NodeWant[] {
  const majors = procDevices(sysRoot);
  const nvidia = majors.get("nvidia-frontend") ?? majors.get("nvidia") ?? 195;
  const uvm = majors.get("nvidia-uvm");
  return [
    { path: "/dev/nvidiactl", major: nvidia, minor: 255, needed: true, why: "the driver's control node", fix: LOAD_NVIDIA },
    ...minors.map((m, i) =>
      m === null
        ? { path: `/dev/nvidia${i}`, needed: true, why: `GPU ${i} (its minor number is unknown: the index is assumed)`, fix: LOAD_NVIDIA }
        : { path: `/dev/nvidia${m}`, major: nvidia, minor: m, needed: true, why: `GPU ${i}`, fix: LOAD_NVIDIA }
    ),
    {
      path: "/dev/nvidia-uvm",
      ...(uvm !== undefined && { major: uvm }),
      needed: true,
      why: "CUDA's unified memory, opened by every CUDA context",
      fix: LOAD_UVM,
    },
    { path: "/dev/nvidia-uvm-tools", ...(uvm !== undefined && { major: uvm }), needed: false, why: "profilers only", fix: LOAD_UVM },
  ];
}

/** A Jetson's GPU nodes: JetPack 6's /dev/nvgpu/igpu0, else the nvhost nodes, and nvmap. Majors are dynamic. */
export function jetsonNodes(devRoot: string): NodeWant[] {
  const igpu = existsSync(under(devRoot, "/dev/nvgpu/igpu0"));
  const gpu = igpu ? ["/dev/nvgpu/igpu0/ctrl", "/dev/nvgpu/igpu0/channel"] : ["/dev/nvhost-ctrl-gpu", "/dev/nvhost-gpu"];
  return [
    ...gpu.map((path) => ({ path, needed: true, why: "the integrated GPU (dynamic major)", fix: JETSON })),
    { path: "/dev/nvmap", needed: true, why: "GPU memory on Tegra", fix: JETSON },
  ];
}

/** Checks each wanted node under `devRoot`. */
export function nodeChecks(devRoot: string, wants: readonly NodeWant[], uid: number): Check[] {
  return wants.map((w) => {
    const at = under(devRoot, w.path);
    const bad = w.needed ? "fail" : "warn";
    let node: HostNode | null;
    try {
      node = statNode(at);
    } catch (e) {
      const what = e instanceof NotADeviceError ? "is not a device node" : `cannot be read: ${(e as Error).message}`;
      return check("device nodes", w.path, bad, `${at} ${what}`, "remove it and reload the driver (or let udev recreate it)");
    }
    if (node === null) return check("device nodes", w.path, bad, `missing (${w.why})`, w.fix);
    const numbers = `${node.type} ${node.major}:${node.minor} mode ${node.fileMode.toString(8).padStart(4, "0")} gid ${node.gid}`;
    if (node.type !== "c") {
      return check("device nodes", w.path, bad, `${numbers}: not a character device`, "remove it and reload the driver");
    }
    if ((w.major !== undefined && node.major !== w.major) || (w.minor !== undefined && node.minor !== w.minor)) {
      return check(
        "device nodes",
        w.path,
        bad,
        `${numbers}: expected ${w.major ?? "*"}:${w.minor ?? "*"}`,
        "the node is stale (left from another driver): remove it and reload the driver",
      );
    }
    try {
      accessSync(at, constants.R_OK | constants.W_OK);
    } catch {
      return check(
        "device nodes",
        w.path,
        bad,
        `${numbers}: uid ${uid} cannot open it read-write`,
        `run the bridge as a user in group ${node.gid}, or give the node mode 0666 (a udev rule)`,
      );
    }
    return check("device nodes", w.path, "ok", `${numbers} (${w.why})`);
  });
}

/** The state folder: owned by this user, not writable by others, the API token private. */
export function stateChecks(stateDir: string, uid: number): Check[] {
  let st;
  try {
    st = statSync(stateDir);
  } catch {
    let parent = dirname(stateDir);
    while (!existsSync(parent) && parent !== dirname(parent)) parent = dirname(parent);
    try {
      accessSync(parent, constants.W_OK);
      return [check("state", "state folder", "ok", `${stateDir} does not exist yet; it will be created under ${parent}`)];
    } catch {
      return [
        check(
          "state",
          "state folder",
          "fail",
          `${stateDir} does not exist and ${parent} is not writable by uid ${uid}`,
          `create it: mkdir -p -m 0700 ${stateDir} && chown ${uid} ${stateDir}`,
        ),
      ];
    }
  }
  const out: Check[] = [];
  const mode = st.mode & 0o7777;
  const modeText = mode.toString(8).padStart(4, "0");
  if (!st.isDirectory()) {
    return [check("state", "state folder", "fail", `${stateDir} is not a folder`, "move it away, or pass another --state-dir")];
  }
  if (st.uid !== uid) {
    out.push(
      check(
        "state",
        "state folder",
        "fail",
        `${stateDir} is owned by uid ${st.uid}; the bridge runs as uid ${uid}`,
        `chown -R ${uid} ${stateDir}`,
      ),
    );
  } else if ((mode & 0o022) !== 0) {
    out.push(
      check("state", "state folder", "fail", `${stateDir} mode ${modeText}: others can write the lease journal`, `chmod 0700 ${stateDir}`),
    );
  } else {
    out.push(check("state", "state folder", "ok", `${stateDir} owned by uid ${uid}, mode ${modeText}`));
  }
  const token = join(stateDir, "api-token");
  try {
    const t = statSync(token);
    const tm = t.mode & 0o777;
    out.push(
      (tm & 0o077) === 0 ? check("state", "api-token", "ok", `${token} mode ${tm.toString(8).padStart(4, "0")}`) : check(
        "state",
        "api-token",
        "fail",
        `${token} mode ${tm.toString(8).padStart(4, "0")}: others can read the API token`,
        `chmod 0600 ${token}`,
      ),
    );
  } catch {
    out.push(check("state", "api-token", "info", "none yet: one is generated on first start (mode 0600)"));
  }
  return out;
}

/** Free space where the spool lives against its cap. */
export function diskCheck(stateDir: string, spoolMaxBytes: number): Check {
  let at = stateDir;
  while (!existsSync(at) && at !== dirname(at)) at = dirname(at);
  const mib = (n: number) => Math.floor(n / (1024 * 1024));
  try {
    const fs = statfsSync(at);
    const free = Number(fs.bavail) * Number(fs.bsize);
    return free >= spoolMaxBytes
      ? check("state", "spool disk", "ok", `${mib(free)} MiB free at ${at}; the spool may use up to ${mib(spoolMaxBytes)} MiB`)
      : check(
        "state",
        "spool disk",
        "fail",
        `${mib(free)} MiB free at ${at}, less than the spool's cap of ${mib(spoolMaxBytes)} MiB`,
        `free space, or pass --spool-max-mb ${Math.max(1, mib(free / 2))}`,
      );
  } catch (e) {
    return check("state", "spool disk", "warn", `cannot read free space at ${at}: ${(e as Error).message}`, "check the file system");
  }
}
