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

// How the code is written: JavaScriptCore compiles a function to machine code once it has run
// about twenty times (each call counts 30 towards a threshold of 500, each loop turn 1), and on a
// cold start that compilation (~0.25 ms for the first, which also builds the JIT's stubs) costs
// more than the interpreter would have. A spec holds about a hundred objects, so the per-object
// checks are written out inside loops over each list, and the helpers left (edits, string maps)
// run a handful of times: `cdi apply` then compiles nothing at all.

/** An object as JSON and YAML parsers make them: not null, not an array, Object's prototype. */
function isPlain(x: unknown): x is Data {
  return typeof x === "object" && x !== null && !Array.isArray(x) && Object.getPrototypeOf(x) === Object.prototype;
}

/** `v.record(v.string(), v.string())` with nothing it would skip: its output is the input. */
function isStringMap(x: unknown): boolean {
  if (!isPlain(x)) return false;
  for (const k in x) {
    if (k === "__proto__" || k === "prototype" || k === "constructor" || typeof x[k] !== "string") return false;
  }
  return true;
}

/** `v.array(v.string())`, written inline where it runs per object. */
function isStrings(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (typeof x[i] !== "string") return false;
  return true;
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

/** `deviceNodes`: each node's fields checked inline (see the note above). */
function isDeviceNodes(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x) || Object.getPrototypeOf(x) !== Object.prototype) return false;
    let path = false;
    for (const k in x) {
      const y = (x as Data)[k];
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
          if (!Number.isInteger(y) || (y as number) < 0 || (y as number) > 0xffff_ffff) return false;
          break;
        default:
          return false;
      }
    }
    if (!path) return false;
  }
  return true;
}

function isMounts(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x) || Object.getPrototypeOf(x) !== Object.prototype) return false;
    let required = 0;
    for (const k in x) {
      const y = (x as Data)[k];
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
          if (!Array.isArray(y)) return false;
          for (let j = 0; j < y.length; j++) if (typeof y[j] !== "string") return false;
          break;
        default:
          return false;
      }
    }
    if (required !== 2) return false;
  }
  return true;
}

function isHooks(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x) || Object.getPrototypeOf(x) !== Object.prototype) return false;
    let required = 0;
    for (const k in x) {
      const y = (x as Data)[k];
      switch (k) {
        case "hookName":
        case "path":
          required++;
          if (typeof y !== "string") return false;
          break;
        case "args":
        case "env":
          if (!Array.isArray(y)) return false;
          for (let j = 0; j < y.length; j++) if (typeof y[j] !== "string") return false;
          break;
        case "timeout":
          if (!Number.isInteger(y)) return false;
          break;
        default:
          return false;
      }
    }
    if (required !== 2) return false;
  }
  return true;
}

function isNetDevices(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x) || Object.getPrototypeOf(x) !== Object.prototype) return false;
    let required = 0;
    for (const k in x) {
      if ((k !== "hostInterfaceName" && k !== "name") || typeof (x as Data)[k] !== "string") return false;
      required++;
    }
    if (required !== 2) return false;
  }
  return true;
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
        if (!isDeviceNodes(y)) return false;
        break;
      case "hooks":
        if (!isHooks(y)) return false;
        break;
      case "mounts":
        if (!isMounts(y)) return false;
        break;
      case "intelRdt":
        if (!isIntelRdt(y)) return false;
        break;
      case "additionalGids":
        if (!Array.isArray(y)) return false;
        for (let i = 0; i < y.length; i++) {
          if (!Number.isInteger(y[i]) || (y[i] as number) < 0 || (y[i] as number) > 0xffff_ffff) return false;
        }
        break;
      case "netDevices":
        if (!isNetDevices(y)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function isDevices(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x) || Object.getPrototypeOf(x) !== Object.prototype) return false;
    let required = 0;
    for (const k in x) {
      const y = (x as Data)[k];
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
    if (required !== 2) return false;
  }
  return true;
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
        if (!isDevices(y)) return false;
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
// `undefined` alike, and an object is anything non-null of type "object" but an array (the
// schema's objectOnly). A valid config.json is returned as read either way; this only spares the schema.
// Per-element checks are inline in loops here too (a config.json holds a dozen mounts or more).

const isObject = (x: unknown): x is Data => typeof x === "object" && x !== null && !Array.isArray(x);

/** An optional `v.array(v.string())`. */
function optStrings(x: unknown): boolean {
  if (x === undefined) return true;
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (typeof x[i] !== "string") return false;
  return true;
}

/** An optional `v.array(uint32)`. */
function optUint32s(x: unknown): boolean {
  if (x === undefined) return true;
  if (!Array.isArray(x)) return false;
  for (let i = 0; i < x.length; i++) if (!Number.isInteger(x[i]) || x[i] < 0 || x[i] > 0xffff_ffff) return false;
  return true;
}

function isOciMounts(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
    const m = x as Data;
    if (typeof m.destination !== "string") return false;
    if (m.source !== undefined && typeof m.source !== "string") return false;
    if (m.type !== undefined && typeof m.type !== "string") return false;
    const o = m.options;
    if (o !== undefined) {
      if (!Array.isArray(o)) return false;
      for (let j = 0; j < o.length; j++) if (typeof o[j] !== "string") return false;
    }
  }
  return true;
}

function isOciHookList(list: unknown): boolean {
  if (list === undefined) return true;
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
    const h = x as Data;
    if (typeof h.path !== "string" || !optStrings(h.args) || !optStrings(h.env)) return false;
    if (h.timeout !== undefined && !Number.isInteger(h.timeout)) return false;
  }
  return true;
}

function isOciHooks(x: unknown): boolean {
  if (!isObject(x)) return false;
  // The six names of hook-names.ts, spelt out: no array walk on the start path.
  return isOciHookList(x.prestart) && isOciHookList(x.createRuntime) && isOciHookList(x.createContainer) &&
    isOciHookList(x.startContainer) && isOciHookList(x.poststart) && isOciHookList(x.poststop);
}

function isOciLinuxDevices(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
    const d = x as Data;
    if (typeof d.type !== "string" || typeof d.path !== "string") return false;
    if (d.major !== undefined && !Number.isInteger(d.major)) return false;
    if (d.minor !== undefined && !Number.isInteger(d.minor)) return false;
    for (const n of [d.fileMode, d.uid, d.gid]) {
      if (n !== undefined && (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 0xffff_ffff)) return false;
    }
  }
  return true;
}

function isOciDeviceCgroups(list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = list[i];
    if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
    const r = x as Data;
    if (typeof r.allow !== "boolean") return false;
    if (r.type !== undefined && typeof r.type !== "string") return false;
    if (r.major !== undefined && !Number.isInteger(r.major)) return false;
    if (r.minor !== undefined && !Number.isInteger(r.minor)) return false;
    if (r.access !== undefined && typeof r.access !== "string") return false;
  }
  return true;
}

/** `netDevices`: a record of loose `{name?: string}`, with the keys valibot's record reads. */
function isOciNetDevices(x: unknown): boolean {
  if (!isObject(x)) return false;
  for (const k in x) {
    if (!Object.hasOwn(x, k) || k === "__proto__" || k === "prototype" || k === "constructor") continue;
    const y = x[k];
    if (!isObject(y) || (y.name !== undefined && typeof y.name !== "string")) return false;
  }
  return true;
}

/** Whether `x` is an OCI spec the schema accepts (false: ask the schema, which words why). */
export function isOciSpecData(x: unknown): x is OciSpec {
  if (!isObject(x) || (x.ociVersion !== undefined && typeof x.ociVersion !== "string")) return false;
  const p = x.process;
  if (p !== undefined) {
    if (!isObject(p) || !optStrings(p.env)) return false;
    const u = p.user;
    if (u !== undefined) {
      if (!isObject(u) || !optUint32s(u.additionalGids)) return false;
      for (const n of [u.uid, u.gid]) {
        if (n !== undefined && (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 0xffff_ffff)) return false;
      }
    }
  }
  if (x.mounts !== undefined && !isOciMounts(x.mounts)) return false;
  if (x.hooks !== undefined && !isOciHooks(x.hooks)) return false;
  const l = x.linux;
  if (l !== undefined) {
    if (!isObject(l)) return false;
    if (l.devices !== undefined && !isOciLinuxDevices(l.devices)) return false;
    const r = l.resources;
    if (r !== undefined && !(isObject(r) && (r.devices === undefined || isOciDeviceCgroups(r.devices)))) return false;
    if (l.intelRdt !== undefined && !isObject(l.intelRdt)) return false;
    if (l.netDevices !== undefined && !isOciNetDevices(l.netDevices)) return false;
  }
  return true;
}
