/**
 * The answer when no GPU backend can be used: a few lines a newcomer can act on. It names each
 * library and exactly where it was looked for (the loader's search by name, the override from the
 * environment, the Jetson folders where they were tried, which is only on aarch64), why each
 * attempt failed when that was anything but "not there", the variables that point at a library
 * installed elsewhere, and `--mock`. Pure: it formats what the attempts report.
 */
import type { NativeLibraryError } from "../../ffi/loader.ts";

/** One library's attempt: what it is, its override variable, and what opening it threw. */
export interface LibraryFailure {
  /** "NVML" or "CUDA". */
  readonly label: string;
  /** The environment variable naming its path. */
  readonly envVar: string;
  /** The override's value, if set. */
  readonly override: string | undefined;
  readonly error: unknown;
}

/** dlopen's wording (glibc, musl, Bun, Deno) for a file that is not there. */
const NOT_THERE = /no such file|cannot open shared object file|image not found/i;

/** The dynamic loader's reason without the runtime's prefix and the path it repeats. */
function reason(path: string, error: string): string {
  let r = error.replace(/^Failed to open library "[^"]*":\s*/, "");
  if (r.startsWith(`${path}: `)) r = r.slice(path.length + 2);
  return r.split("\n")[0]!;
}

const isAttempts = (e: unknown): e is NativeLibraryError => e instanceof Error && Array.isArray((e as { attempts?: unknown }).attempts);

/** One line: where the library was looked for and why each place failed. */
export function libraryLine(f: LibraryFailure): string {
  if (!isAttempts(f.error)) return `${f.label}: ${f.error instanceof Error ? f.error.message.split("\n")[0] : String(f.error)}`;
  const byName: string[] = [];
  const folders: string[] = [];
  const other: string[] = [];
  for (const a of f.error.attempts) {
    const why = reason(a.path, a.error);
    const missing = NOT_THERE.test(why);
    if (a.path === f.override) other.push(`${f.envVar}=${a.path}: ${missing ? "no such file" : why}`);
    else if (!missing) other.push(`${a.path}: ${why}`);
    else if (!a.path.includes("/")) byName.push(a.path);
    else folders.push(a.path.slice(0, a.path.lastIndexOf("/")));
  }
  const notFound = byName.length === 0 && folders.length === 0 ? [] : [
    `${byName.length > 0 ? `${byName.join(", ")} not found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH)` : "not found"}${
      folders.length > 0 ? `, nor in ${folders.join(" or ")} (Jetson)` : ""
    }`,
  ];
  return `${f.label}: ${[...other, ...notFound].join("; ")}`;
}

/**
 * The whole message: a heading, one line per library, and what to do (at most four lines). The
 * heading says which backend was asked for (`auto` tries NVML, then CUDA).
 */
export function noGpuMessage(backend: string, failures: readonly LibraryFailure[]): string {
  const vars = failures.map((f) => f.envVar).join(" or ");
  return [
    `Cannot discover GPUs (backend ${backend}): ${
      failures.length > 1
        ? `neither ${failures.map((f) => f.label).join(" nor ")} could be used`
        : `${failures[0]?.label} could not be used`
    }.`,
    ...failures.map(libraryLine),
    `If the driver is installed elsewhere, set ${vars} to the library's full path; without an NVIDIA GPU, add --mock for the mock inventory.`,
  ].join("\n");
}
