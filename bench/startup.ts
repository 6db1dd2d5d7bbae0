/**
 * Start-up benchmark: the compiled `--mock --list` against a compiled hello-world of the same
 * Bun (the floor a compiled binary cannot beat). Target: at most 1.2x the floor.
 * Run with `make bench-startup`; RUNS=N overrides the sample count.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const repo = join(import.meta.dir, "..");
const bin = join(repo, "dist", "gpu-bridge-host");
const benchDir = join(repo, "dist", "bench");
const hello = join(benchDir, "hello");
const runs = Number(process.env.RUNS ?? 60);

mkdirSync(benchDir, { recursive: true });
// The floor is the cheapest hello-world found: one Bun.write to stdout. (process.stdout costs
// about 12 ms to set up, so a process.stdout hello-world would flatter us.)
writeFileSync(join(benchDir, "hello.ts"), 'void Bun.write(Bun.stdout, "hello\\n");\n');
// The floor is built with the same flags as `make build` (passed in by the Makefile).
const flags = (process.env.COMPILE_FLAGS ?? "--compile --minify --bytecode").split(/\s+/).filter(Boolean);
const built = Bun.spawnSync([process.execPath, "build", ...flags, join(benchDir, "hello.ts"), "--outfile", hello]);
if (built.exitCode !== 0) throw new Error(`Cannot build the hello-world floor: ${built.stderr.toString()}`);

// Correctness first, once: the timed runs below send stdout to /dev/null so that neither
// program pays for a reader on a pipe.
const check = Bun.spawnSync([bin, "--mock", "--list"], { cwd: "/tmp" });
const fixture = await Bun.file(join(repo, "test", "fixtures", "mock-list.json")).bytes();
if (Buffer.compare(Buffer.from(check.stdout), Buffer.from(fixture)) !== 0) {
  throw new Error(`${bin} --mock --list does not match the fixture: rebuild with make build`);
}

function time(cmd: string[]): number {
  const t0 = performance.now();
  const r = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "pipe", cwd: "/tmp" });
  const t = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return t;
}

const floor: number[] = [];
const list: number[] = [];
for (let i = 0; i < 5; i++) (time([hello]), time([bin, "--mock", "--list"])); // warm the page cache
for (let i = 0; i < runs; i++) {
  // Interleaved so drift in machine load hits both equally.
  floor.push(time([hello]));
  list.push(time([bin, "--mock", "--list"]));
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const ratio = q(list, 0.5) / q(floor, 0.5);
console.log(`startup over ${runs} runs each (wall time of a child process, ms; build flags: ${flags.join(" ")})`);
console.log(`  hello-world floor   median ${q(floor, 0.5).toFixed(2)}  p90 ${q(floor, 0.9).toFixed(2)}`);
console.log(`  --mock --list       median ${q(list, 0.5).toFixed(2)}  p90 ${q(list, 0.9).toFixed(2)}`);
console.log(`  ratio (median)      ${ratio.toFixed(3)}x  (target <= 1.2x: ${ratio <= 1.2 ? "met" : "MISSED"})`);
