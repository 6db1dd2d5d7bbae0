/**
 * Start-up benchmark: the compiled `--mock --list` against a compiled hello-world of the same
 * Bun (the floor a compiled binary cannot beat). Target: at most 1.2x the floor.
 * Run with `make bench-startup`; RUNS=N overrides the sample count.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { quantile } from "./quantile.ts";
import { buildFloor, freshCopy, interleaved } from "./against-floor.ts";

const repo = join(import.meta.dir, "..");
const bin = join(repo, "dist", "gpu-bridge-host");
const benchDir = join(repo, "dist", "bench");
const runs = Number(process.env.RUNS ?? 60);
const hello = buildFloor(benchDir);

// Correctness first, once: the timed runs below send stdout to /dev/null so that neither
// program pays for a reader on a pipe.
const check = Bun.spawnSync([bin, "--mock", "--list"], { cwd: "/tmp" });
const fixture = await Bun.file(join(repo, "test", "fixtures", "mock-list.json")).bytes();
if (Buffer.compare(Buffer.from(check.stdout), Buffer.from(fixture)) !== 0) {
  throw new Error(`${bin} --mock --list does not match the fixture: rebuild with make build`);
}

// Both programs are timed from fresh copies in one new folder. How a 100 MB executable sits in
// the page cache (in large folios after a write, in smaller ones after being dropped and read
// back) moves its start-up by a millisecond or more, more than the difference being measured:
// a binary that has been in the cache for a while against a just-built hello-world can read
// 1.4x when the same pair, copied side by side, reads 1.15x. Copies put both in the same state.
const runDir = mkdtempSync(join(benchDir, "run-"));
process.on("exit", () => rmSync(runDir, { recursive: true, force: true }));
const helloCopy = freshCopy(runDir, hello, "hello");
const binCopy = freshCopy(runDir, bin, "gpu-bridge-host");
const { floor, subject: list } = interleaved([helloCopy], [binCopy, "--mock", "--list"], runs);

const ratio = quantile(list, 0.5) / quantile(floor, 0.5);
console.log(
  `startup over ${runs} runs each (wall time of a child process, ms; build flags: ${
    process.env.COMPILE_FLAGS ?? "--compile --minify --bytecode"
  })`,
);
console.log(`  hello-world floor   median ${quantile(floor, 0.5).toFixed(2)}  p90 ${quantile(floor, 0.9).toFixed(2)}`);
console.log(`  --mock --list       median ${quantile(list, 0.5).toFixed(2)}  p90 ${quantile(list, 0.9).toFixed(2)}`);
console.log(`  ratio (median)      ${ratio.toFixed(3)}x  (target <= 1.2x: ${ratio <= 1.2 ? "met" : "MISSED"})`);

// Instructions, where valgrind is installed: deterministic, unlike wall time on a shared machine.
function instructions(cmd: string[]): number | undefined {
  const r = Bun.spawnSync(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", ...cmd], {
    stdout: "ignore",
    stderr: "pipe",
    cwd: "/tmp",
  });
  const m = /refs:\s+([\d,]+)/.exec(r.stderr.toString());
  return r.exitCode === 0 && m !== null ? Number(m[1]!.replaceAll(",", "")) : undefined;
}
if (Bun.which("valgrind") !== null) {
  const a = instructions([helloCopy]);
  const b = instructions([binCopy, "--mock", "--list"]);
  if (a !== undefined && b !== undefined) {
    const m = (n: number) => `${(n / 1e6).toFixed(2)} M`;
    console.log(`  instructions        hello-world ${m(a)}, --mock --list ${m(b)} (${(b / a).toFixed(3)}x, callgrind)`);
  }
} else {
  console.log("  instructions        not counted: valgrind is not installed");
}
