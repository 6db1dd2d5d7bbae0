/**
 * The typed model of CDI specs (CNCF Container Device Interface, up to 1.1.0) and of the OCI
 * pieces that edits produce. Every schema is written once here and its type derived from it,
 * so a runtime author can import the model alone.
 *
 * CDI objects are strict: the reference library parses strictly (an unknown field is an
 * error), and modelling every field means reading a spec and writing it back loses nothing.
 * The OCI `config.json` is loose: a runtime's own fields must pass through untouched.
 */
import * as v from "valibot";
import { HOOK_NAMES, type HookName } from "./hook-names.ts";

const int = v.pipe(v.number(), v.integer());
const uint32 = v.pipe(int, v.minValue(0), v.maxValue(0xffff_ffff));

/** What a value is, in words, for "expected an object, found …". */
export function describeValue(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return `an array (${x.length} item${x.length === 1 ? "" : "s"})`;
  if (typeof x === "string") return `a string ${JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x)}`;
  return typeof x === "object" ? "an object" : `a ${typeof x} (${String(x)})`;
}

/**
 * An object, and not an array: valibot's object schemas take any non-null `typeof "object"`,
 * arrays included, and an array where config.json needs an object (`process`, `linux`, …) is an
 * object that the edits would be applied to and that JSON then drops: the container would start
 * without its devices and nobody would know. Every object below is checked by this first.
 */
const objectOnly = v.custom<Record<string, unknown>>(
  (x) => typeof x === "object" && x !== null && !Array.isArray(x),
  (issue) => `expected an object, found ${describeValue(issue.input)}`,
);
const strictObject = <E extends v.ObjectEntries>(entries: E) => v.pipe(objectOnly, v.strictObject(entries));
const looseObject = <E extends v.ObjectEntries>(entries: E) => v.pipe(objectOnly, v.looseObject(entries));
const stringMap = v.pipe(objectOnly, v.record(v.string(), v.string()));

/** A device node to create in the container (`type` b, c, u, p or empty). */
export const CdiDeviceNode = strictObject({
  path: v.string(),
  hostPath: v.optional(v.string()),
  type: v.optional(v.string()),
  major: v.optional(int),
  minor: v.optional(int),
  fileMode: v.optional(uint32),
  permissions: v.optional(v.string()),
  uid: v.optional(uint32),
  gid: v.optional(uint32),
});
export type CdiDeviceNode = v.InferOutput<typeof CdiDeviceNode>;

/** A mount; `options` and `type` are copied verbatim into the OCI spec. */
export const CdiMount = strictObject({
  hostPath: v.string(),
  containerPath: v.string(),
  options: v.optional(v.array(v.string())),
  type: v.optional(v.string()),
});
export type CdiMount = v.InferOutput<typeof CdiMount>;

/** A hook; `hookName` names one of the six OCI hook arrays. */
export const CdiHook = strictObject({
  hookName: v.string(),
  path: v.string(),
  args: v.optional(v.array(v.string())),
  env: v.optional(v.array(v.string())),
  timeout: v.optional(int),
});
export type CdiHook = v.InferOutput<typeof CdiHook>;

export const CdiIntelRdt = strictObject({
  closID: v.optional(v.string()),
  l3CacheSchema: v.optional(v.string()),
  memBwSchema: v.optional(v.string()),
  schemata: v.optional(v.array(v.string())),
  enableCMT: v.optional(v.boolean()),
  enableMBM: v.optional(v.boolean()),
  enableMonitoring: v.optional(v.boolean()),
});
export type CdiIntelRdt = v.InferOutput<typeof CdiIntelRdt>;

export const CdiNetDevice = strictObject({
  hostInterfaceName: v.string(),
  name: v.string(),
});
export type CdiNetDevice = v.InferOutput<typeof CdiNetDevice>;

/** What a device (or a whole spec) does to a container. */
export const CdiContainerEdits = strictObject({
  env: v.optional(v.array(v.string())),
  deviceNodes: v.optional(v.array(CdiDeviceNode)),
  hooks: v.optional(v.array(CdiHook)),
  mounts: v.optional(v.array(CdiMount)),
  intelRdt: v.optional(CdiIntelRdt),
  additionalGids: v.optional(v.array(uint32)),
  netDevices: v.optional(v.array(CdiNetDevice)),
});
export type CdiContainerEdits = v.InferOutput<typeof CdiContainerEdits>;

export const CdiDevice = strictObject({
  name: v.string(),
  annotations: v.optional(stringMap),
  containerEdits: CdiContainerEdits,
});
export type CdiDevice = v.InferOutput<typeof CdiDevice>;

/** A whole CDI spec file. */
export const CdiSpec = strictObject({
  cdiVersion: v.string(),
  kind: v.string(),
  annotations: v.optional(stringMap),
  devices: v.array(CdiDevice),
  containerEdits: v.optional(CdiContainerEdits),
});
export type CdiSpec = v.InferOutput<typeof CdiSpec>;

/** The six OCI hook arrays, in the order a runtime runs their phases (hook-names.ts). */
export { HOOK_NAMES, type HookName };

/** `linux.devices[]` of an OCI spec. */
export const OciLinuxDevice = looseObject({
  type: v.string(),
  path: v.string(),
  major: v.optional(int),
  minor: v.optional(int),
  fileMode: v.optional(uint32),
  uid: v.optional(uint32),
  gid: v.optional(uint32),
});
export type OciLinuxDevice = v.InferOutput<typeof OciLinuxDevice>;

/** `linux.resources.devices[]`: one cgroup device rule. */
export const OciDeviceCgroup = looseObject({
  allow: v.boolean(),
  type: v.optional(v.string()),
  major: v.optional(int),
  minor: v.optional(int),
  access: v.optional(v.string()),
});
export type OciDeviceCgroup = v.InferOutput<typeof OciDeviceCgroup>;

export const OciHook = looseObject({
  path: v.string(),
  args: v.optional(v.array(v.string())),
  env: v.optional(v.array(v.string())),
  timeout: v.optional(int),
});
export type OciHook = v.InferOutput<typeof OciHook>;

export const OciMount = looseObject({
  destination: v.string(),
  source: v.optional(v.string()),
  type: v.optional(v.string()),
  options: v.optional(v.array(v.string())),
});
export type OciMount = v.InferOutput<typeof OciMount>;

/**
 * The parts of an OCI runtime `config.json` that CDI edits touch; everything else is kept as
 * read. `hooks` holds the six arrays of HOOK_NAMES.
 */
export const OciSpec = looseObject({
  ociVersion: v.optional(v.string()),
  process: v.optional(looseObject({
    env: v.optional(v.array(v.string())),
    user: v.optional(looseObject({
      uid: v.optional(uint32),
      gid: v.optional(uint32),
      additionalGids: v.optional(v.array(uint32)),
    })),
  })),
  mounts: v.optional(v.array(OciMount)),
  hooks: v.optional(looseObject(Object.fromEntries(HOOK_NAMES.map((n) => [n, v.optional(v.array(OciHook))])) as Record<
    HookName,
    v.OptionalSchema<v.ArraySchema<typeof OciHook, undefined>, undefined>
  >)),
  linux: v.optional(looseObject({
    devices: v.optional(v.array(OciLinuxDevice)),
    resources: v.optional(looseObject({ devices: v.optional(v.array(OciDeviceCgroup)) })),
    intelRdt: v.optional(looseObject({})),
    netDevices: v.optional(v.pipe(objectOnly, v.record(v.string(), looseObject({ name: v.optional(v.string()) })))),
  })),
});
export type OciSpec = v.InferOutput<typeof OciSpec>;
