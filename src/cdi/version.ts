/**
 * CDI versions: which exist, and the minimum a spec needs (the reference library refuses a spec
 * declaring an unknown version or one below that minimum; older consumers also refuse any
 * version newer than they know).
 */
import type { CdiContainerEdits, CdiSpec } from "./schema.ts";

/** Every released CDI spec version, oldest first. */
export const CDI_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"] as const;
export type CdiVersion = typeof CDI_VERSIONS[number];

/** The newest version this model knows. */
export const CURRENT_CDI_VERSION: CdiVersion = "1.1.0";

/** `v` without one leading `v` (the Go library accepts `v1.0.0`). */
const bare = (v: string) => (v.startsWith("v") ? v.slice(1) : v);

// Loops rather than includes/map: these run for every spec `cdi apply` loads, on a cold start.

/** Whether `v` is a released version (a leading `v` is accepted, as the Go library does). */
export function isKnownVersion(v: string): boolean {
  const b = bare(v);
  for (let i = 0; i < CDI_VERSIONS.length; i++) if (CDI_VERSIONS[i] === b) return true;
  return false;
}

/** Compares two `x.y.z` versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = bare(a).split(".");
  const pb = bare(b).split(".");
  for (let i = 0; i < 3; i++) {
    const d = (i < pa.length ? Number(pa[i]) : 0) - (i < pb.length ? Number(pb[i]) : 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** One reason a spec needs a version: the version and the feature (a field path or a rule). */
export interface VersionNeed {
  readonly version: CdiVersion;
  readonly feature: string;
  readonly device?: string;
}

/** Every feature in `spec` that needs more than 0.3.0, with where it is. */
export function versionNeeds(spec: CdiSpec): VersionNeed[] {
  const needs: VersionNeed[] = [];
  const edits = (e: CdiContainerEdits | undefined, where: string, device?: string) => {
    if (e === undefined) return;
    const add = (version: CdiVersion, feature: string) =>
      needs.push({ version, feature: `${where}.${feature}`, ...(device !== undefined && { device }) });
    e.mounts?.forEach((m, i) => m.type !== undefined && add("0.4.0", `mounts[${i}].type`));
    e.deviceNodes?.forEach((n, i) => n.hostPath !== undefined && add("0.5.0", `deviceNodes[${i}].hostPath`));
    if (e.intelRdt !== undefined) add("0.7.0", "intelRdt");
    if (e.additionalGids !== undefined) add("0.7.0", "additionalGids");
    if (e.netDevices !== undefined) add("1.1.0", "netDevices");
    if (e.intelRdt?.schemata !== undefined) add("1.1.0", "intelRdt.schemata");
    if (e.intelRdt?.enableMonitoring !== undefined) add("1.1.0", "intelRdt.enableMonitoring");
  };
  if (spec.annotations !== undefined) needs.push({ version: "0.6.0", feature: "annotations" });
  if (spec.kind.includes("/") && spec.kind.slice(spec.kind.indexOf("/") + 1).includes(".")) {
    needs.push({ version: "0.6.0", feature: "kind (a '.' in the class)" });
  }
  edits(spec.containerEdits, "containerEdits");
  spec.devices.forEach((d, i) => {
    if (/^[0-9]/.test(d.name)) needs.push({ version: "0.5.0", feature: `devices[${i}].name (starts with a digit)`, device: d.name });
    if (d.annotations !== undefined) needs.push({ version: "0.6.0", feature: `devices[${i}].annotations`, device: d.name });
    edits(d.containerEdits, `devices[${i}].containerEdits`, d.name);
  });
  return needs;
}

/**
 * The minimum version `spec` needs: 0.3.0 unless a feature needs more. The same table as
 * versionNeeds(), walked without building the list: this runs for every spec a consumer loads.
 */
export function minimumVersion(spec: CdiSpec): CdiVersion {
  let rank = RANK_030;
  const need = (v: number) => void (v > rank && (rank = v));
  const edits = (e: CdiContainerEdits | undefined) => {
    if (e === undefined) return;
    if (e.mounts !== undefined) { for (const m of e.mounts) if (m.type !== undefined) need(RANK_040); }
    if (e.deviceNodes !== undefined) { for (const n of e.deviceNodes) if (n.hostPath !== undefined) need(RANK_050); }
    if (e.intelRdt !== undefined || e.additionalGids !== undefined) need(RANK_070);
    if (e.netDevices !== undefined || e.intelRdt?.schemata !== undefined || e.intelRdt?.enableMonitoring !== undefined) need(RANK_110);
  };
  if (spec.annotations !== undefined) need(RANK_060);
  const slash = spec.kind.indexOf("/");
  if (slash >= 0 && spec.kind.includes(".", slash + 1)) need(RANK_060);
  edits(spec.containerEdits);
  for (const d of spec.devices) {
    const c = d.name.charCodeAt(0);
    if (c >= 48 && c <= 57) need(RANK_050);
    if (d.annotations !== undefined) need(RANK_060);
    edits(d.containerEdits);
  }
  return CDI_VERSIONS[rank]!;
}

const RANK_030 = CDI_VERSIONS.indexOf("0.3.0");
const RANK_040 = CDI_VERSIONS.indexOf("0.4.0");
const RANK_050 = CDI_VERSIONS.indexOf("0.5.0");
const RANK_060 = CDI_VERSIONS.indexOf("0.6.0");
const RANK_070 = CDI_VERSIONS.indexOf("0.7.0");
const RANK_110 = CDI_VERSIONS.indexOf("1.1.0");
