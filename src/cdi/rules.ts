/**
 * The rules a spec must keep once its shape is right (validate.ts checks the shape with the
 * schema first): the reference library's rules (names, versions, node types, permissions, hook
 * names, env), the stricter ones it skips (absolute paths, hook timeout > 0, bind options, host
 * device numbers), and whether an older consumer would accept the file. Every problem names the
 * file, the device (where there is one) and the field. No valibot here: `cdi apply` runs these
 * on every container's start after the hand-written shape check of shape.ts.
 */
import { HOOK_NAMES, isHookName } from "./hook-names.ts";
import { deviceNameProblem, kindProblem } from "./names.ts";
import type { CdiContainerEdits, CdiSpec } from "./schema.ts";
import { isCdiSpecData } from "./shape.ts";
import { compareVersions, isKnownVersion, minimumVersion, versionNeeds } from "./version.ts";

export interface Problem {
  readonly severity: "error" | "warning";
  readonly file: string;
  /** The device's name, when the problem is inside one. */
  readonly device?: string;
  /** A path such as `devices[0].containerEdits.deviceNodes[1].major`. */
  readonly field: string;
  readonly message: string;
}

export interface ValidateOptions {
  readonly file: string;
  /** Also check that a consumer whose CDI library is at this version would accept the spec. */
  readonly consumerVersion?: string;
  /**
   * Reads a host device node, to catch device numbers that disagree with the host's (null: no
   * such node here, nothing to compare). Left out: no host check.
   */
  readonly statNode?: (path: string) => { type: "b" | "c" | "p"; major: number; minor: number } | null;
  /**
   * Whether to add the stricter rules (absolute paths, hook timeout > 0, bind options, warnings);
   * false gives the reference library's rules alone, as a consumer loading a spec folder applies.
   */
  readonly strict?: boolean;
}

/** Keys a spec's env must not set: the image's own CUDA requirements (nvbind overwrote them). */
const IMAGE_OWNED_ENV = new Set(["CUDA_VERSION", "NVIDIA_REQUIRE_CUDA"]);

/** Formats a problem as one line: `file: device "x": field: message`. */
export function formatProblem(p: Problem): string {
  const device = p.device === undefined ? "" : ` device ${JSON.stringify(p.device)}:`;
  return `${p.file}:${device} ${p.field}: ${p.severity === "warning" ? "warning: " : ""}${p.message}`;
}

/** The problems of a spec whose shape the schema accepts (validateSpec's second step). */
export function specProblems(spec: CdiSpec, o: ValidateOptions): Problem[] {
  const problems: Problem[] = [];
  const add = (severity: Problem["severity"], field: string, message: string, device?: string) =>
    problems.push({ severity, file: o.file, field, message, ...(device !== undefined && { device }) });

  // Version: known, and at least what the spec uses.
  const min = minimumVersion(spec);
  if (!isKnownVersion(spec.cdiVersion)) {
    add("error", "cdiVersion", `invalid version ${JSON.stringify(spec.cdiVersion)} (known: 0.1.0 to 1.1.0)`);
  } else if (compareVersions(spec.cdiVersion, min) < 0) {
    const need = versionNeeds(spec).find((n) => n.version === min)!;
    add("error", "cdiVersion", `the spec version must be at least ${min} (for ${need.feature}), got ${spec.cdiVersion}`);
  } else if (compareVersions(spec.cdiVersion, min) > 0 && compareVersions(spec.cdiVersion, "0.5.0") > 0 && o.strict !== false) {
    // Up to 0.5.0 every consumer still in use (Debian 12's podman 4.3) accepts; past it, say so.
    add("warning", "cdiVersion", `declares ${spec.cdiVersion} but needs only ${min}; consumers older than ${spec.cdiVersion} refuse it`);
  }
  if (o.consumerVersion !== undefined) consumerCheck(spec, o.consumerVersion, add);

  const kind = kindProblem(spec.kind);
  if (kind !== null) add("error", "kind", kind);
  if (spec.annotations !== undefined) annotations(spec.annotations, "annotations", add);
  if (spec.devices.length === 0) add("error", "devices", "a spec needs at least one device");
  const seen = new Set<string>();
  for (let i = 0; i < spec.devices.length; i++) {
    const d = spec.devices[i]!;
    const where = `devices[${i}]`;
    const name = deviceNameProblem(d.name);
    if (name !== null) add("error", `${where}.name`, name, d.name);
    if (seen.has(d.name)) add("error", `${where}.name`, `duplicate device name ${JSON.stringify(d.name)}`, d.name);
    seen.add(d.name);
    if (d.annotations !== undefined) annotations(d.annotations, `${where}.annotations`, add, d.name);
    if (isEmpty(d.containerEdits)) add("error", `${where}.containerEdits`, "invalid device: empty container edits", d.name);
    edits(d.containerEdits, `${where}.containerEdits`, d.name, add, o);
  }
  if (spec.containerEdits !== undefined) edits(spec.containerEdits, "containerEdits", undefined, add, o);
  return problems;
}

type Add = (severity: Problem["severity"], field: string, message: string, device?: string) => void;

function consumerCheck(spec: CdiSpec, consumer: string, add: Add): void {
  if (compareVersions(spec.cdiVersion, consumer) > 0) {
    add("error", "cdiVersion", `a consumer at CDI ${consumer} refuses version ${spec.cdiVersion} (unknown to it)`);
  }
  for (const need of versionNeeds(spec)) {
    if (compareVersions(need.version, consumer) > 0) {
      add("error", need.feature, `needs CDI ${need.version}; a consumer at ${consumer} refuses it`, need.device);
    }
  }
}

function isEmpty(e: CdiContainerEdits): boolean {
  return !e.env?.length && !e.deviceNodes?.length && !e.hooks?.length && !e.mounts?.length &&
    !e.additionalGids?.length && e.intelRdt === undefined && !e.netDevices?.length;
}

const ANNOTATION_KEY =
  /^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function annotations(map: Record<string, string>, where: string, add: Add, device?: string): void {
  let size = 0;
  for (const [k, val] of Object.entries(map)) {
    size += k.length + val.length;
    if (!ANNOTATION_KEY.test(k)) add("error", `${where}.${k}`, `invalid annotation key ${JSON.stringify(k)}`, device);
  }
  if (size > 256 * 1024) add("error", where, `annotations total ${size} bytes, more than 256 KiB`, device);
}

// Plain index loops throughout, and the per-node tests written out in them: this runs on every
// container's start, where the first call of a builtin such as Array.prototype.forEach costs its
// compilation, and a helper called once per node or path would soon be compiled too (shape.ts).
function edits(e: CdiContainerEdits, where: string, device: string | undefined, add: Add, o: ValidateOptions): void {
  const strict = o.strict !== false;
  const err = (field: string, message: string) => void add("error", `${where}.${field}`, message, device);
  // The stricter rules: what the spec text and OCI require but the reference library skips.
  const strictErr = (field: string, message: string) => void (strict && err(field, message));
  const warn = (field: string, message: string) => void (strict && add("warning", `${where}.${field}`, message, device));
  const env = e.env ?? [];
  for (let i = 0; i < env.length; i++) {
    const kv = env[i]!;
    if (kv.indexOf("=") <= 0) err(`env[${i}]`, `invalid environment variable ${JSON.stringify(kv)}: needs KEY=VALUE with a non-empty KEY`);
    else if (IMAGE_OWNED_ENV.has(kv.slice(0, kv.indexOf("=")))) {
      warn(`env[${i}]`, `sets ${kv.slice(0, kv.indexOf("="))}, which the image owns; it would be overwritten`);
    }
  }
  const nodes = e.deviceNodes ?? [];
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    const f = `deviceNodes[${i}]`;
    if (n.path === "") err(`${f}.path`, "invalid (empty) device path");
    else if (!n.path.startsWith("/")) strictErr(`${f}.path`, `device path ${JSON.stringify(n.path)} is not absolute`);
    if (n.hostPath !== undefined && !n.hostPath.startsWith("/")) {
      strictErr(`${f}.hostPath`, `host path ${JSON.stringify(n.hostPath)} is not absolute`);
    }
    const t = n.type;
    if (t !== undefined && t !== "" && t !== "b" && t !== "c" && t !== "u" && t !== "p") {
      err(`${f}.type`, `device ${JSON.stringify(n.path)}: invalid type ${JSON.stringify(n.type)} (b, c, u, p or empty)`);
    }
    let permissions = true; // /^[rwm]*$/
    for (let j = 0; n.permissions !== undefined && j < n.permissions.length; j++) {
      const c = n.permissions[j];
      if (c !== "r" && c !== "w" && c !== "m") permissions = false;
    }
    if (!permissions) {
      err(`${f}.permissions`, `device ${JSON.stringify(n.path)}: invalid permissions ${JSON.stringify(n.permissions)} (only r, w, m)`);
    }
    if (n.major !== undefined && n.major < 0) strictErr(`${f}.major`, `device ${JSON.stringify(n.path)}: negative major ${n.major}`);
    if (n.minor !== undefined && n.minor < 0) strictErr(`${f}.minor`, `device ${JSON.stringify(n.path)}: negative minor ${n.minor}`);
    if (strict) hostCheck(n, f, err, o);
  }
  const mounts = e.mounts ?? [];
  for (let i = 0; i < mounts.length; i++) {
    const m = mounts[i]!;
    const f = `mounts[${i}]`;
    if (m.hostPath === "") err(`${f}.hostPath`, "invalid mount: empty host path");
    else if (!m.hostPath.startsWith("/")) strictErr(`${f}.hostPath`, `host path ${JSON.stringify(m.hostPath)} is not absolute`);
    if (m.containerPath === "") err(`${f}.containerPath`, "invalid mount: empty container path");
    else if (!m.containerPath.startsWith("/")) {
      strictErr(`${f}.containerPath`, `container path ${JSON.stringify(m.containerPath)} is not absolute`);
    }
    if (strict && m.type === undefined && !hasBind(m.options ?? [])) {
      strictErr(`${f}.options`, `mount of ${JSON.stringify(m.hostPath)} has no type and neither bind nor rbind, so it is not a bind mount`);
    }
  }
  const hooks = e.hooks ?? [];
  for (let i = 0; i < hooks.length; i++) {
    const h = hooks[i]!;
    const f = `hooks[${i}]`;
    if (!isHookName(h.hookName)) {
      err(`${f}.hookName`, `invalid hook name ${JSON.stringify(h.hookName)} (one of ${HOOK_NAMES.join(", ")})`);
    }
    if (h.path === "") err(`${f}.path`, `invalid hook ${JSON.stringify(h.hookName)} with empty path`);
    else if (!h.path.startsWith("/")) strictErr(`${f}.path`, `hook path ${JSON.stringify(h.path)} is not absolute`);
    if (h.timeout !== undefined && h.timeout <= 0) strictErr(`${f}.timeout`, `hook timeout must be > 0 seconds, got ${h.timeout}`);
    const hookEnv = h.env ?? [];
    for (let j = 0; j < hookEnv.length; j++) {
      const kv = hookEnv[j]!;
      if (kv.indexOf("=") <= 0) err(`${f}.env[${j}]`, `invalid environment variable ${JSON.stringify(kv)}: needs KEY=VALUE`);
    }
  }
  const gids = e.additionalGids ?? [];
  for (let i = 0; i < gids.length; i++) if (gids[i] === 0) warn(`additionalGids[${i}]`, "gid 0 is skipped by every consumer");
}

function hasBind(options: readonly string[]): boolean {
  for (let i = 0; i < options.length; i++) if (options[i] === "bind" || options[i] === "rbind") return true;
  return false;
}

/** A node whose type and major are given is trusted by consumers: they had better be the host's. */
function hostCheck(
  n: CdiContainerEdits["deviceNodes"] extends (infer T)[] | undefined ? T : never,
  f: string,
  err: (field: string, message: string) => void,
  o: ValidateOptions,
): void {
  if (o.statNode === undefined || n.major === undefined || n.major === 0 || (n.type !== "b" && n.type !== "c")) return;
  const host = o.statNode(n.hostPath ?? n.path);
  if (host === null) return;
  if (host.type !== n.type) err(`${f}.type`, `${n.hostPath ?? n.path} is a ${host.type} device on this host, the spec says ${n.type}`);
  if (host.major !== n.major) err(`${f}.major`, `${n.hostPath ?? n.path} has major ${host.major} on this host, the spec says ${n.major}`);
  if (n.minor !== undefined && host.minor !== n.minor) {
    err(`${f}.minor`, `${n.hostPath ?? n.path} has minor ${host.minor} on this host, the spec says ${n.minor}`);
  }
}

/**
 * Whether specProblems(spec, { strict: false }) finds nothing: the reference library's rules
 * alone, answered without wording a problem. This is what a consumer loading a spec folder asks
 * (`cdi apply`, on every container's start), and on a cold start the cost of a function is
 * mostly its size the first time it runs: specProblems, with every message it can word, costs
 * about three times this. Where this says no, specProblems says why. test/cdi/shape.test.ts
 * holds the two to the same answer on every fixture and thousands of mutations.
 */
export function referenceRulesHold(spec: CdiSpec): boolean {
  const v = spec.cdiVersion;
  if (!isKnownVersion(v) || compareVersions(v, minimumVersion(spec)) < 0) return false;
  if (kindProblem(spec.kind) !== null || spec.devices.length === 0) return false;
  if (spec.annotations !== undefined && !annotationsHold(spec.annotations)) return false;
  const seen = new Set<string>();
  for (let i = 0; i < spec.devices.length; i++) {
    const d = spec.devices[i]!;
    if (deviceNameProblem(d.name) !== null || seen.has(d.name) || isEmpty(d.containerEdits)) return false;
    seen.add(d.name);
    if (d.annotations !== undefined && !annotationsHold(d.annotations)) return false;
    if (!editsHold(d.containerEdits)) return false;
  }
  return spec.containerEdits === undefined || editsHold(spec.containerEdits);
}

function annotationsHold(map: Record<string, string>): boolean {
  let size = 0;
  for (const k in map) {
    size += k.length + map[k]!.length;
    if (!ANNOTATION_KEY.test(k)) return false;
  }
  return size <= 256 * 1024;
}

/** edits() with strict false, as a yes or no. */
function editsHold(e: CdiContainerEdits): boolean {
  const env = e.env ?? [];
  for (let i = 0; i < env.length; i++) if (env[i]!.indexOf("=") <= 0) return false;
  const nodes = e.deviceNodes ?? [];
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    const t = n.type;
    if (n.path === "" || (t !== undefined && t !== "" && t !== "b" && t !== "c" && t !== "u" && t !== "p")) return false;
    const p = n.permissions ?? "";
    for (let j = 0; j < p.length; j++) if (p[j] !== "r" && p[j] !== "w" && p[j] !== "m") return false;
  }
  const mounts = e.mounts ?? [];
  for (let i = 0; i < mounts.length; i++) if (mounts[i]!.hostPath === "" || mounts[i]!.containerPath === "") return false;
  const hooks = e.hooks ?? [];
  for (let i = 0; i < hooks.length; i++) {
    const h = hooks[i]!;
    if (!isHookName(h.hookName) || h.path === "") return false;
    const hookEnv = h.env ?? [];
    for (let j = 0; j < hookEnv.length; j++) if (hookEnv[j]!.indexOf("=") <= 0) return false;
  }
  return true;
}

/**
 * validateSpec's answer without the schema, where shape.ts vouches for the spec (the common
 * case: what `cdi generate` and nvidia-ctk write); null where only validateSpec can answer.
 * The spec that comes back is `raw` itself, which equals what the schema would have returned.
 */
export function quickValidate(raw: unknown, o: ValidateOptions): { spec: CdiSpec; problems: Problem[] } | null {
  if (!isCdiSpecData(raw)) return null;
  // The reference's rules alone (strict false) hold: nothing to word, and no warning either
  // (every warning is one of the stricter rules).
  if (o.strict === false && o.consumerVersion === undefined && referenceRulesHold(raw)) return { spec: raw, problems: [] };
  return { spec: raw, problems: specProblems(raw, o) };
}
