/**
 * Spec folders, read the way the reference library's cache reads them: folders in priority
 * order (a later folder wins over an earlier one, so `/var/run/cdi` over `/etc/cdi`), only
 * `.json` and `.yaml` files, no subfolders, regular files of at most `DEFAULTS.cdiSpecMaxBytes`
 * only (spec-fs.ts); an unreadable, unparsable or invalid spec is skipped with an error; two specs of the same priority defining one device make that device unresolvable.
 */
import { applyEdits, CdiApplyError, mergeEdits, type StatNode } from "./apply.ts";
import { decodeSpec, formatOf, type SpecFormat, type YamlParse } from "./spec-format.ts";
import { loadSpecFs, type SpecFs } from "./spec-fs.ts";
import { qualify } from "./names.ts";
import type { CdiContainerEdits, CdiDevice, CdiSpec, OciSpec } from "./schema.ts";
import type { SpecCache } from "./spec-cache.ts";
import { DEFAULTS } from "../config/defaults.ts";

export interface LoadedSpec {
  readonly spec: CdiSpec;
  readonly file: string;
  readonly priority: number;
}

export interface ResolvedDevice {
  readonly qualified: string;
  readonly device: CdiDevice;
  readonly spec: LoadedSpec;
}

/** One folder read: how many `.json` and `.yaml` files it held; null when it does not exist. */
export interface SearchedFolder {
  readonly dir: string;
  readonly files: number | null;
}

/** What a set of folders holds: the devices that resolve, and what went wrong on the way. */
export interface SpecRegistry {
  readonly specs: readonly LoadedSpec[];
  readonly devices: ReadonlyMap<string, ResolvedDevice>;
  readonly errors: readonly string[];
  /** Every folder read, in priority order (lowest first), so a miss can say where it looked. */
  readonly searched: readonly SearchedFolder[];
}

/**
 * Reads `dirs` (lowest priority first); a missing folder is simply empty. `parseYaml` reads the
 * `.yaml` files (the library's strict parser, or the runtime's native one on the hot path).
 * With a `cache`, a spec read before is taken from it, and one validated now is remembered
 * (the caller flushes it); the specs and errors are the same with it or without.
 */
export async function loadSpecDirs(
  dirs: readonly string[],
  parseYaml: YamlParse,
  fs?: SpecFs,
  cache?: SpecCache | null,
): Promise<SpecRegistry> {
  const files = fs ?? (await loadSpecFs());
  const specs: LoadedSpec[] = [];
  const errors: string[] = [];
  const searched: SearchedFolder[] = [];
  let readable: boolean | undefined;
  for (let priority = 0; priority < dirs.length; priority++) {
    const dir = dirs[priority]!;
    let names: string[] | null;
    try {
      names = files.files(dir);
    } catch (error) {
      errors.push(`Cannot read spec folder ${dir}: ${(error as Error).message}`);
      searched.push({ dir, files: null });
      continue;
    }
    const folder = { dir, files: names === null ? null : 0 };
    searched.push(folder);
    for (const name of (names ?? []).sort()) {
      const format = formatOf(name);
      if (format === null) continue;
      folder.files!++;
      // Plain concatenation: node:path would cost a load on every container's start.
      const file = dir.endsWith("/") ? dir + name : `${dir}/${name}`;
      try {
        const text = await files.read(file, DEFAULTS.cdiSpecMaxBytes);
        const key = cache?.key(format, text);
        // The folder's trust is settled before its first entry is read, and an untrusted one is
        // never read (its stats were started when the cache was opened).
        if (key !== undefined && readable === undefined) readable = await cache!.readable();
        const cached = key === undefined || readable !== true ? null : cache!.get(key);
        if (cached !== null) {
          specs.push({ spec: cached, file, priority });
          continue;
        }
        const { spec, problems } = await validateText(text, format, file, parseYaml);
        for (let i = 0; i < problems.length; i++) errors.push(problems[i]!);
        if (spec === null) continue;
        if (key !== undefined) cache!.put(key, spec);
        specs.push({ spec, file, priority });
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  }
  return { specs, devices: resolveDevices(specs, errors).devices, errors, searched };
}

/**
 * A spec read now (not from the cache): parsed, then validated by the reference's rules. The
 * rules (rules.ts) load here, and the schema (valibot) only where shape.ts does not vouch for
 * the spec, so a cache hit loads neither. Null with the problems (formatted) when invalid.
 */
async function validateText(
  text: string,
  format: SpecFormat,
  file: string,
  parseYaml: YamlParse,
): Promise<{ spec: CdiSpec | null; problems: string[] }> {
  // A YAML alias repeats its anchor's value wherever it stands, and Bun's native parser expands
  // them without a bound (a 180 KB alias bomb took it to 2 GB and 14 s). Text that may hold one
  // (any `*`) goes to the library, which refuses aliases (codec.ts): a spec needs none.
  const parse = format === "yaml" && text.includes("*") ? (await import("./codec.ts")).libraryYaml : parseYaml;
  const raw = decodeSpec(text, format, file, parse);
  const rules = await import("./rules.ts");
  const o = { file, strict: false };
  const { spec, problems } = rules.quickValidate(raw, o) ?? (await import("./validate.ts")).validateSpec(raw, o);
  const errors: string[] = [];
  for (let i = 0; i < problems.length; i++) if (problems[i]!.severity === "error") errors.push(rules.formatProblem(problems[i]!));
  return { spec: errors.length > 0 ? null : spec, problems: errors };
}

/** Indexes devices by qualified name with the reference's conflict rules. */
export function resolveDevices(specs: readonly LoadedSpec[], errors: string[] = []): { devices: Map<string, ResolvedDevice> } {
  const devices = new Map<string, ResolvedDevice>();
  // A list, not a Set, and index loops: on a cold start each kind of collection and iterator
  // costs its first use (`cdi apply` runs this on every container's start).
  const conflicts: string[] = [];
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i]!;
    for (let j = 0; j < spec.spec.devices.length; j++) {
      const device = spec.spec.devices[j]!;
      const qualified = qualify(spec.spec.kind, device.name);
      const old = devices.get(qualified);
      if (old !== undefined) {
        if (old.spec.priority > spec.priority) continue;
        if (old.spec.priority === spec.priority) {
          errors.push(
            `Conflicting device ${JSON.stringify(qualified)} (specs ${JSON.stringify(old.spec.file)}, ${JSON.stringify(spec.file)})`,
          );
          conflicts.push(qualified);
        }
      }
      devices.set(qualified, { qualified, device, spec });
    }
  }
  for (let i = 0; i < conflicts.length; i++) devices.delete(conflicts[i]!);
  return { devices };
}

/** How many device names a miss lists before it points at `cdi list`. */
const NAMES_SHOWN = 12;

/** `/etc/cdi (missing), /var/run/cdi (2 spec files)`: where the folders were and what they held. */
export function searchedText(searched: readonly SearchedFolder[]): string {
  const parts: string[] = [];
  for (let i = 0; i < searched.length; i++) {
    const f = searched[i]!;
    const what = f.files === null
      ? "missing"
      : f.files === 0
      ? "no .json or .yaml file"
      : `${f.files} spec file${f.files === 1 ? "" : "s"}`;
    parts.push(`${f.dir} (${what})`);
  }
  return parts.length === 0 ? "no folder" : parts.join(", ");
}

/** Why `unresolved` did not resolve: the folders searched and the devices they do define. */
function unresolvedMessage(registry: Pick<SpecRegistry, "devices"> & Partial<SpecRegistry>, unresolved: readonly string[]): string {
  const head = `Unresolvable CDI devices ${unresolved.join(", ")}`;
  if (registry.searched === undefined) return head;
  const known = [...registry.devices.keys()].sort();
  const shown = known.length <= NAMES_SHOWN
    ? known.join(", ")
    : `${known.slice(0, NAMES_SHOWN).join(", ")}, and ${known.length - NAMES_SHOWN} more (cdi list shows them all)`;
  return `${head}: no spec defines ${unresolved.length === 1 ? "it" : "them"}. Searched ${searchedText(registry.searched)}; ${
    known.length === 0 ? "no device is defined there" : `the devices there: ${shown}`
  }${registry.errors !== undefined && registry.errors.length > 0 ? " (specs skipped as invalid are named above)" : ""}`;
}

/** The edits for `names`, in request order: each spec's global edits before its first device. */
export function gatherEdits(registry: Pick<SpecRegistry, "devices"> & Partial<SpecRegistry>, names: readonly string[]): CdiContainerEdits {
  const unresolved: string[] = [];
  for (let i = 0; i < names.length; i++) if (!registry.devices.has(names[i]!)) unresolved.push(names[i]!);
  if (unresolved.length > 0) throw new CdiApplyError(unresolvedMessage(registry, unresolved));
  const seenSpecs: LoadedSpec[] = [];
  const list: CdiContainerEdits[] = [];
  for (let i = 0; i < names.length; i++) {
    const r = registry.devices.get(names[i]!)!;
    if (seenSpecs.indexOf(r.spec) < 0) {
      seenSpecs.push(r.spec);
      if (r.spec.spec.containerEdits !== undefined) list.push(r.spec.spec.containerEdits);
    }
    list.push(r.device.containerEdits);
  }
  return mergeEdits(list);
}

/**
 * Injects `names` into a copy of `oci`; an unknown device or a failing edit changes nothing.
 * `stat` is called only for a device node whose type and major the spec leaves out.
 */
export function injectDevices(registry: Pick<SpecRegistry, "devices">, oci: OciSpec, names: readonly string[], stat: StatNode): OciSpec {
  return applyEdits(oci, gatherEdits(registry, names), stat);
}
