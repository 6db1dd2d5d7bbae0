/**
 * Hand-written shape checks for the two documents `cdi apply` reads on every container's start:
 * a CDI spec and an OCI `config.json`. Each answers true only where the valibot schema of
 * schema.ts accepts the value *and* its output equals the value itself (same fields, same
 * values); anything else (a wrong type, an unknown field, a field set to `undefined`, an array
 * where an object belongs, an object that is not plain data) answers false, and the caller then
 * runs the schema, which finds and words the problem. So a true answer can stand in for the
 * schema without loading valibot (about 2 M instructions to load and build at a cold start), and
 * a false one costs nothing but the schema run that would have happened anyway.
 *
 * The rules mirror valibot 1.x exactly where it matters: `v.string()` is `typeof "string"`,
 * `v.number()` refuses NaN and `v.integer()` is Number.isInteger, a strict object refuses a key
 * its schema lacks (`__proto__` included), `v.optional` accepts an absent key, a record skips
 * `__proto__`, `prototype` and `constructor` (so a record holding one is left to the schema).
 * test/cdi/shape.test.ts checks the agreement on every fixture and generated spec and on
 * thousands of mutations of them.
 */
import type { CdiSpec, OciSpec } from "./schema.ts";

type Data = Record<string, unknown>;

/** An object as JSON and YAML parsers make them: not null, not an array, Object's prototype. */
function isPlain(x: unknown): x is Data {
  return typeof x === "object" && x !== null && !Array.isArray(x) && Object.getPrototypeOf(x) === Object.prototype;
}

const isUint32 = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffff_ffff;

function isStrings(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (typeof x[i] !== "string") return false;
  return true;
}

function isUint32s(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (!isUint32(x[i])) return false;
  return true;
}

function isArrayOf(x: unknown, item: (y: unknown) => boolean): boolean {
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (!item(x[i])) return false;
  return true;
}

/** `v.record(v.string(), v.string())` with nothing it would skip: its output is the input. */
function isStringMap(x: unknown): boolean {
  if (!isPlain(x)) return false;
  for (const k in x) {
    if (k === "__proto__" || k === "prototype" || k === "constructor" || typeof x[k] !== "string") return false;
  }
  return true;
}

function isDeviceNode(x: unknown): boolean {
  if (!isPlain(x)) return false;
  let path = false;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "path":
        path = true;
        if (typeof y !== "string") return false;
        break;
      case "hostPath":
      case "type":
      case "permissions":
        if (typeof y !== "string") return false;
        break;
      case "major":
      case "minor":
        if (!Number.isInteger(y)) return false;
        break;
      case "fileMode":
      case "uid":
      case "gid":
        if (!isUint32(y)) return false;
        break;
      default:
        return false;
    }
  }
  return path;
}

function isMount(x: unknown): boolean {
  if (!isPlain(x)) return false;
  let required = 0;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "hostPath":
      case "containerPath":
        required++;
        if (typeof y !== "string") return false;
        break;
      case "type":
        if (typeof y !== "string") return false;
        break;
      case "options":
        if (!isStrings(y)) return false;
        break;
      default:
        return false;
    }
  }
  return required === 2;
}

function isHook(x: unknown): boolean {
  if (!isPlain(x)) return false;
  let required = 0;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "hookName":
      case "path":
        required++;
        if (typeof y !== "string") return false;
        break;
      case "args":
      case "env":
        if (!isStrings(y)) return false;
        break;
      case "timeout":
        if (!Number.isInteger(y)) return false;
        break;
      default:
        return false;
    }
  }
  return required === 2;
}

function isIntelRdt(x: unknown): boolean {
  if (!isPlain(x)) return false;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "closID":
      case "l3CacheSchema":
      case "memBwSchema":
        if (typeof y !== "string") return false;
        break;
      case "schemata":
        if (!isStrings(y)) return false;
        break;
      case "enableCMT":
      case "enableMBM":
      case "enableMonitoring":
        if (typeof y !== "boolean") return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function isNetDevice(x: unknown): boolean {
  if (!isPlain(x)) return false;
  let required = 0;
  for (const k in x) {
    if ((k !== "hostInterfaceName" && k !== "name") || typeof x[k] !== "string") return false;
    required++;
  }
  return required === 2;
}

function isEdits(x: unknown): boolean {
  if (!isPlain(x)) return false;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "env":
        if (!isStrings(y)) return false;
        break;
      case "deviceNodes":
        if (!isArrayOf(y, isDeviceNode)) return false;
        break;
      case "hooks":
        if (!isArrayOf(y, isHook)) return false;
        break;
      case "mounts":
        if (!isArrayOf(y, isMount)) return false;
        break;
      case "intelRdt":
        if (!isIntelRdt(y)) return false;
        break;
      case "additionalGids":
        if (!isUint32s(y)) return false;
        break;
      case "netDevices":
        if (!isArrayOf(y, isNetDevice)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function isDevice(x: unknown): boolean {
  if (!isPlain(x)) return false;
  let required = 0;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "name":
        required++;
        if (typeof y !== "string") return false;
        break;
      case "annotations":
        if (!isStringMap(y)) return false;
        break;
      case "containerEdits":
        required++;
        if (!isEdits(y)) return false;
        break;
      default:
        return false;
    }
  }
  return required === 2;
}

/** Whether `x` is a CDI spec the schema accepts unchanged (false: ask the schema). */
export function isCdiSpecData(x: unknown): x is CdiSpec {
  if (!isPlain(x)) return false;
  let required = 0;
  for (const k in x) {
    const y = x[k];
    switch (k) {
      case "cdiVersion":
      case "kind":
        required++;
        if (typeof y !== "string") return false;
        break;
      case "annotations":
        if (!isStringMap(y)) return false;
        break;
      case "devices":
        required++;
        if (!isArrayOf(y, isDevice)) return false;
        break;
      case "containerEdits":
        if (!isEdits(y)) return false;
        break;
      default:
        return false;
    }
  }
  return required === 3;
}

// The OCI side: loose objects (other keys pass), where `v.optional` takes a missing key or
// `undefined` alike, and an object is anything truthy of type "object" (arrays too), as valibot
// tests it. A valid config.json is returned as read either way; this only spares the schema.

const isObject = (x: unknown): x is Data => typeof x === "object" && x !== null;
const optString = (x: unknown) => x === undefined || typeof x === "string";
const optInt = (x: unknown) => x === undefined || Number.isInteger(x);
const optUint32 = (x: unknown) => x === undefined || isUint32(x);
const optStrings = (x: unknown) => x === undefined || isStrings(x);

function isOciHook(x: unknown): boolean {
  return isObject(x) && typeof x.path === "string" && optStrings(x.args) && optStrings(x.env) && optInt(x.timeout);
}

function isOciMount(x: unknown): boolean {
  return isObject(x) && typeof x.destination === "string" && optString(x.source) && optString(x.type) && optStrings(x.options);
}

function isOciLinuxDevice(x: unknown): boolean {
  return isObject(x) && typeof x.type === "string" && typeof x.path === "string" && optInt(x.major) && optInt(x.minor) &&
    optUint32(x.fileMode) && optUint32(x.uid) && optUint32(x.gid);
}

function isOciDeviceCgroup(x: unknown): boolean {
  return isObject(x) && typeof x.allow === "boolean" && optString(x.type) && optInt(x.major) && optInt(x.minor) && optString(x.access);
}

function isOciHooks(x: unknown): boolean {
  if (!isObject(x)) return false;
  // The six names of hook-names.ts, spelt out: no array walk on the start path.
  const ok = (y: unknown) => y === undefined || isArrayOf(y, isOciHook);
  return ok(x.prestart) && ok(x.createRuntime) && ok(x.createContainer) && ok(x.startContainer) && ok(x.poststart) && ok(x.poststop);
}

/** `netDevices`: a record of loose `{name?: string}`, with the keys valibot's record reads. */
function isOciNetDevices(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) {
    if (!Object.hasOwn(x, k) || k === "__proto__" || k === "prototype" || k === "constructor") continue;
    const y = x[k];
    if (!isObject(y) || !optString(y.name)) return false;
  }
  return true;
}

/** Whether `x` is an OCI spec the schema accepts (false: ask the schema, which words why). */
export function isOciSpecData(x: unknown): x is OciSpec {
  if (!isObject(x) || !optString(x.ociVersion)) return false;
  const p = x.process;
  if (p !== undefined) {
    if (!isObject(p) || !optStrings(p.env)) return false;
    const u = p.user;
    if (u !== undefined && !(isObject(u) && optUint32(u.uid) && optUint32(u.gid) && (u.additionalGids === undefined || isUint32s(u.additionalGids)))) {
      return false;
    }
  }
  if (x.mounts !== undefined && !isArrayOf(x.mounts, isOciMount)) return false;
  if (x.hooks !== undefined && !isOciHooks(x.hooks)) return false;
  const l = x.linux;
  if (l !== undefined) {
    if (!isObject(l)) return false;
    if (l.devices !== undefined && !isArrayOf(l.devices, isOciLinuxDevice)) return false;
    const r = l.resources;
    if (r !== undefined && !(isObject(r) && (r.devices === undefined || isArrayOf(r.devices, isOciDeviceCgroup)))) return false;
    if (l.intelRdt !== undefined && !isObject(l.intelRdt)) return false;
    if (l.netDevices !== undefined && !isOciNetDevices(l.netDevices)) return false;
  }
  return true;
}
