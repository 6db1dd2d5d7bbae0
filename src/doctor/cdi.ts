/**
 * The CDI specs container runtimes will read (/etc/cdi, /var/run/cdi) against this host: each
 * file must parse and validate, its device nodes must exist with the numbers it names, and the
 * driver files it mounts must still exist (a driver upgrade leaves the old versioned libraries'
 * names in the spec, and the container then fails to start).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { decodeSpec, formatOf } from "../cdi/codec.ts";
import { statNode } from "../cdi/devnode.ts";
import type { CdiContainerEdits } from "../cdi/schema.ts";
import { formatProblem, validateSpec } from "../cdi/validate.ts";
import { type Check, check } from "./types.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { NotRegularFileError, readCapped } from "../util/files.ts";
import { under } from "../cdi/discover.ts";

const REGENERATE = "regenerate it: gpu-bridge-host cdi generate --output <the file> (or nvidia-ctk cdi generate)";

/** Checks every spec in `dirs` (read under `sysRoot`); device nodes without a hostPath are looked up under `devRoot`. */
export function cdiChecks(o: { sysRoot: string; devRoot: string; dirs: readonly string[]; driverVersion: string | null }): Check[] {
  const out: Check[] = [];
  let files = 0;
  for (const dir of o.dirs) {
    let names: string[];
    try {
      names = readdirSync(under(o.sysRoot, dir)).filter((n) => formatOf(n) !== null).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      files++;
      out.push(specCheck(join(dir, name), under(o.sysRoot, join(dir, name)), o));
    }
  }
  if (files === 0) {
    out.push(check(
      "cdi",
      "specs",
      "warn",
      `no CDI spec in ${o.dirs.join(" or ")}: containers cannot ask for nvidia.com/gpu devices`,
      "gpu-bridge-host cdi generate --output /etc/cdi/nvidia.yaml (or nvidia-ctk cdi generate)",
    ));
  }
  return out;
}

function specCheck(shown: string, path: string, o: { devRoot: string; driverVersion: string | null }): Check {
  let raw: unknown;
  try {
    // A FIFO or device named *.json would block the read forever: only regular files are read,
    // and only up to the cap `cdi apply` and `cdi list` hold specs to.
    let bytes: Uint8Array | null;
    try {
      bytes = readCapped(path, DEFAULTS.cdiSpecMaxBytes, true);
    } catch (e) {
      if (!(e instanceof NotRegularFileError)) throw e;
      return check("cdi", shown, "warn", "is not a regular file; container runtimes will fail on it", "remove it");
    }
    if (bytes === null) {
      return check(
        "cdi",
        shown,
        "warn",
        `is over ${DEFAULTS.cdiSpecMaxBytes} bytes, more than any spec needs (cdi apply skips it)`,
        REGENERATE,
      );
    }
    raw = decodeSpec(new TextDecoder().decode(bytes), formatOf(path)!, shown);
  } catch (e) {
    return check("cdi", shown, "warn", `cannot be read: ${(e as Error).message.split("\n")[0]}`, REGENERATE);
  }
  const { spec, problems } = validateSpec(raw, { file: shown });
  const errors = problems.filter((p) => p.severity === "error");
  if (spec === null || errors.length > 0) {
    return check("cdi", shown, "warn", `invalid: ${errors.slice(0, 3).map(formatProblem).join("; ")}`, REGENERATE);
  }
  const edits: CdiContainerEdits[] = [...(spec.containerEdits ? [spec.containerEdits] : []), ...spec.devices.map((d) => d.containerEdits)];
  const stale: string[] = [];
  for (const e of edits) {
    for (const n of e.deviceNodes ?? []) {
      const at = n.hostPath ?? under(o.devRoot, n.path);
      let node;
      try {
        node = statNode(at);
      } catch {
        node = null;
      }
      if (node === null) stale.push(`node ${n.path} is missing`);
      else if ((n.major !== undefined && n.major !== node.major) || (n.minor !== undefined && n.minor !== node.minor)) {
        stale.push(`node ${n.path} is ${node.major}:${node.minor}, the spec says ${n.major}:${n.minor}`);
      }
    }
    for (const m of e.mounts ?? []) {
      if (!existsSync(m.hostPath)) {
        const version = /\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(m.hostPath)?.[1];
        const note = version !== undefined && o.driverVersion !== null && version !== o.driverVersion
          ? ` (library of driver ${version}; the driver is ${o.driverVersion})`
          : "";
        stale.push(`${m.hostPath} is gone${note}`);
      }
    }
  }
  const unique = [...new Set(stale)];
  if (unique.length > 0) {
    const more = unique.length > 4 ? `; and ${unique.length - 4} more` : "";
    return check("cdi", shown, "warn", `stale for this host: ${unique.slice(0, 4).join("; ")}${more}`, REGENERATE);
  }
  return check("cdi", shown, "ok", `${spec.kind}: ${spec.devices.length} device(s), cdiVersion ${spec.cdiVersion}, matches this host`);
}
