/**
 * A command's start-up against the compiled hello-world floor, as bench/startup.ts and
 * bench/cdi.ts measure it: both programs timed from fresh copies in one new folder (how a 100 MB
 * executable sits in the page cache moves its start-up by a millisecond or more, more than the
 * difference being measured), interleaved so drift in machine load hits both equally, after a
 * short warm-up; stdout goes to /dev/null so that neither pays for a reader on a pipe.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A copy of `path` named `name` in `dir`, written now. */
export function freshCopy(dir: string, path: string, name: string): string {
  const copy = join(dir, name);
  writeFileSync(copy, readFileSync(path), { mode: 0o755 });
  return copy;
}

/** Wall milliseconds of one run of `cmd` (standard input from the file `stdin`, if given); throws if it fails. */
export function time(cmd: string[], stdin?: string): number {
  const t0 = performance.now();
  const r = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe", cwd: "/tmp", ...(stdin !== undefined && { stdin: Bun.file(stdin) }) });
  const t = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return t;
}

/** `runs` interleaved timings of `floorCmd` and `cmd` (both given `stdin`), after 5 of each as warm-up. */
export function interleaved(floorCmd: string[], cmd: string[], runs: number, stdin?: string): { floor: number[]; subject: number[] } {
  const floor: number[] = [];
  const subject: number[] = [];
  for (let i = 0; i < 5; i++) (time(floorCmd, stdin), time(cmd, stdin));
  for (let i = 0; i < runs; i++) {
    floor.push(time(floorCmd, stdin));
    subject.push(time(cmd, stdin));
  }
  return { floor, subject };
}

/**
 * Builds the floor into `benchDir` and returns its path: the cheapest hello-world found, one
 * Bun.write to stdout (process.stdout costs about 12 ms to set up, so a process.stdout
 * hello-world would flatter us), compiled with the flags `make build` uses (COMPILE_FLAGS, passed
 * in by the Makefile).
 */
export function buildFloor(benchDir: string): string {
  mkdirSync(benchDir, { recursive: true });
  const hello = join(benchDir, "hello");
  writeFileSync(join(benchDir, "hello.ts"), 'void Bun.write(Bun.stdout, "hello\\n");\n');
  const flags = (process.env.COMPILE_FLAGS ?? "--compile --minify --bytecode").split(/\s+/).filter(Boolean);
  const built = Bun.spawnSync([process.execPath, "build", ...flags, join(benchDir, "hello.ts"), "--outfile", hello]);
  if (built.exitCode !== 0) throw new Error(`Cannot build the hello-world floor: ${built.stderr.toString()}`);
  return hello;
}
