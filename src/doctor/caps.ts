/**
 * What enforces a lease's cap in a container: MPS (`serve --mps`: is the control program there,
 * which GPUs have a daemon under the state folder, is one running on the default pipe folder)
 * and MIG (each MIG device NVML lists, with its GPU and compute instance ids and whether its
 * capability nodes exist, which a lease of that device needs). Reads only.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { deviceNode, migMinors, type Roots, under } from "../cdi/discover.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { mpsFolders } from "../mps/daemons.ts";
import { type Check, check } from "./types.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** A MIG device as NVML lists it. */
export interface MigFacts {
  readonly uuid: string;
  readonly gi: number;
  readonly ci: number;
}

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/** Where `serve --mps` would find its control program, or null. */
export function findMpsControl(env: Env): { path: string | null; asked: string } {
  const asked = env.GPU_BRIDGE_MPS_CONTROL?.trim() || DEFAULTS.mpsControl;
  if (asked.includes("/")) return { path: executable(asked) ? asked : null, asked };
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && executable(join(dir, asked))) return { path: join(dir, asked), asked };
  }
  return { path: null, asked };
}

/** The control program, the bridge's daemons under the state folder, and the default pipe folder's. */
export function mpsChecks(stateDir: string, sysRoot: string, env: Env): Check[] {
  const out: Check[] = [];
  const program = findMpsControl(env);
  out.push(
    program.path === null
      ? check(
        "sharing",
        "MPS control program",
        "warn",
        `${program.asked} not found${program.asked.includes("/") ? "" : " on PATH"}: serve --mps cannot start daemons`,
        "install the NVIDIA driver's MPS tools (nvidia-cuda-mps-control), or point GPU_BRIDGE_MPS_CONTROL at it",
      )
      : check("sharing", "MPS control program", "ok", `${program.path}: serve --mps can run a daemon per GPU`),
  );
  let gpus: string[];
  try {
    gpus = readdirSync(join(stateDir, "mps")).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  } catch {
    gpus = [];
  }
  for (const gpu of gpus) {
    const { pipe } = mpsFolders(stateDir, gpu);
    out.push(check(
      "sharing",
      `${gpu} MPS`,
      "info",
      existsSync(join(pipe, "control"))
        ? `a control daemon's endpoint is at ${join(pipe, "control")} (serve --mps's folder): leases' containers join it there`
        : `no control daemon at ${pipe}: the bridge is not running with --mps, or this GPU's daemon was refused (its log says why)`,
    ));
  }
  const dir = env.CUDA_MPS_PIPE_DIRECTORY?.trim() || "/tmp/nvidia-mps";
  out.push(
    existsSync(under(sysRoot, join(dir, "control")))
      ? check("sharing", "MPS", "info", `a control daemon's pipe is at ${join(dir, "control")}: MPS is probably on (NVML cannot say)`)
      : check(
        "sharing",
        "MPS",
        "info",
        `no control pipe at ${dir}: no system-wide MPS daemon there, or it uses another CUDA_MPS_PIPE_DIRECTORY (NVML cannot say)`,
      ),
  );
  return out;
}

/** One line per MIG device: its ids and whether its capability nodes are there for a lease of it. */
export function migChecks(roots: Roots, gpus: readonly { label: string; minor: number | null; migs: readonly MigFacts[] }[]): Check[] {
  const minors = migMinors(roots);
  const out: Check[] = [];
  for (const g of gpus) {
    for (const m of g.migs) {
      const name = `${g.label} ${m.uuid}`;
      const ids = `GPU instance ${m.gi}, compute instance ${m.ci}`;
      if (g.minor === null) {
        out.push(
          check("sharing", name, "warn", `${ids}; the GPU's minor number is unknown, so its nodes cannot be checked`, "check the driver"),
        );
        continue;
      }
      const missing: string[] = [];
      const found: string[] = [];
      for (const key of [`gpu${g.minor}/gi${m.gi}/access`, `gpu${g.minor}/gi${m.gi}/ci${m.ci}/access`]) {
        const minor = minors.get(key);
        if (minor === undefined) missing.push(`${key} (not in /proc/driver/nvidia-caps/mig-minors)`);
        else if (deviceNode(roots, `/dev/nvidia-caps/nvidia-cap${minor}`) === null) missing.push(`/dev/nvidia-caps/nvidia-cap${minor}`);
        else found.push(`/dev/nvidia-caps/nvidia-cap${minor}`);
      }
      out.push(
        missing.length === 0 ? check("sharing", name, "ok", `${ids}; nodes ${found.join(", ")}: a lease can name it`) : check(
          "sharing",
          name,
          "warn",
          `${ids}; missing ${missing.join(", ")}: a lease of it gets no CDI device`,
          "create the capability nodes the driver lists in /proc/driver/nvidia-caps/mig-minors (char devices, the nvidia-caps major of /proc/devices)",
        ),
      );
    }
  }
  return out;
}
