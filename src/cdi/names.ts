/**
 * CDI name grammar, as the reference parser enforces it: vendor and class start with a letter
 * and end with a letter or digit, with letters, digits, `_`, `.` and `-` between; device names
 * may also hold `:` and may start with a digit.
 */

const isAlpha = (c: string) => /^[A-Za-z]$/.test(c);
const isAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

const VENDOR = /^[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const DEVICE = /^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;

/** One whole-name match in the common (valid) case; the character-by-character walk only to explain a refusal. */
function checkName(what: string, name: string, whole: RegExp, first: (c: string) => boolean, middle: RegExp): string | null {
  if (whole.test(name)) return null;
  if (name === "") return `invalid (empty) ${what} name`;
  if (!first(name[0]!)) {
    return `invalid ${what} name ${JSON.stringify(name)}: must start with a ${first === isAlpha ? "letter" : "letter or digit"}`;
  }
  if (!isAlnum(name[name.length - 1]!)) return `invalid ${what} name ${JSON.stringify(name)}: must end with a letter or digit`;
  for (const c of name.slice(1, -1)) {
    if (!middle.test(c)) return `invalid ${what} name ${JSON.stringify(name)}: invalid character ${JSON.stringify(c)}`;
  }
  return null;
}

/** Why `vendor` is not a valid vendor name, or null. */
export const vendorProblem = (vendor: string) => checkName("vendor", vendor, VENDOR, isAlpha, /^[A-Za-z0-9_.-]$/);
/** Why `cls` is not a valid class name, or null. */
export const classProblem = (cls: string) => checkName("class", cls, VENDOR, isAlpha, /^[A-Za-z0-9_.-]$/);
/** Why `name` is not a valid device name, or null. */
export const deviceNameProblem = (name: string) => checkName("device", name, DEVICE, isAlnum, /^[A-Za-z0-9_.:-]$/);

/** Why `kind` (`vendor/class`) is invalid, or null. */
export function kindProblem(kind: string): string | null {
  const slash = kind.indexOf("/");
  if (slash < 0) return `invalid kind ${JSON.stringify(kind)}: needs vendor/class`;
  return vendorProblem(kind.slice(0, slash)) ?? classProblem(kind.slice(slash + 1));
}

/** A fully qualified device name `vendor/class=name`, split; null when malformed. */
export function parseQualified(qualified: string): { kind: string; name: string } | null {
  const eq = qualified.indexOf("=");
  if (eq < 0) return null;
  const kind = qualified.slice(0, eq);
  const name = qualified.slice(eq + 1);
  if (kindProblem(kind) !== null || deviceNameProblem(name) !== null) return null;
  return { kind, name };
}

/** `kind=name`. */
export const qualify = (kind: string, name: string) => `${kind}=${name}`;
