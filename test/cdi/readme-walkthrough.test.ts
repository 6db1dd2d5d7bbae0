/**
 * The README's CDI walkthrough, run as written: the block between `<!-- walkthrough:cdi -->` and
 * `<!-- /walkthrough:cdi -->` is read from the README and each line run with `sh` in a fresh
 * folder, `gpu-bridge-host` being the CLI entry. Nothing here needs a GPU, a driver or /dev/nvidia*:
 * `--mock` brings its own device nodes. Every line must match one of the checks below and every
 * check must be used, so a README that changes its commands fails here until this file follows.
 */
import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { REPO, tempFolder } from "../helpers.ts";

/** The shell lines of the walkthrough block (blank and comment-only lines dropped). */
export function walkthrough(readme: string, name: string): string[] {
  const start = readme.indexOf(`<!-- walkthrough:${name} -->`);
  const end = readme.indexOf(`<!-- /walkthrough:${name} -->`);
  if (start < 0 || end < start) throw new Error(`README.md has no walkthrough:${name} block`);
  const fence = /```sh\n([\s\S]*?)```/.exec(readme.slice(start, end));
  if (fence === null) throw new Error(`the walkthrough:${name} block holds no sh code fence`);
  return fence[1]!.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

interface Ran {
  readonly line: string;
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

const UUID = (i: number) => `GPU-00000000-0000-4000-8000-00000000000${i}`;
const NAMES = ["0", "1", UUID(0), UUID(1), "all"].map((n) => `nvidia.com/gpu=${n}`);

/** What each line must do, recognised by its start; `cwd` is the walkthrough's folder. */
const CHECKS: [RegExp, (r: Ran, cwd: string) => void][] = [
  [/^gpu-bridge-host cdi generate --mock --output (\S+)/, (r, cwd) => {
    expect(r.code).toBe(0);
    const file = /--output (\S+)/.exec(r.line)![1]!;
    const spec = parseYaml(readFileSync(join(cwd, file), "utf8"));
    expect(spec.kind).toBe("nvidia.com/gpu");
    expect(spec.devices.map((d: { name: string }) => `nvidia.com/gpu=${d.name}`).sort()).toEqual([...NAMES].sort());
    expect(spec.devices[0].containerEdits.deviceNodes).toEqual([
      { path: "/dev/nvidia0", type: "c", major: 195, minor: 0, fileMode: 0o666, permissions: "rwm", gid: 0 },
    ]);
  }],
  [/^gpu-bridge-host cdi validate /, (r) => {
    expect(r.code).toBe(0);
    expect(r.out).toContain("valid (cdiVersion 0.5.0, kind nvidia.com/gpu, 5 devices, accepted by a CDI 0.5.0 consumer)");
  }],
  [/^echo '.*' > \S+( |$)/, (r) => expect(r.code).toBe(0)],
  [/^gpu-bridge-host cdi list --spec-dir cdi-demo( |$)/, (r) => {
    expect(r.code).toBe(0);
    expect(r.out.trim().split("\n")).toEqual([...NAMES].sort());
  }],
  [/^gpu-bridge-host cdi apply .* nvidia\.com\/gpu=0$/, (r) => {
    expect(r.code).toBe(0);
    const oci = JSON.parse(r.out);
    expect(oci.linux.devices.map((d: { path: string }) => d.path)).toEqual([
      "/dev/nvidiactl",
      "/dev/nvidia-uvm",
      "/dev/nvidia-uvm-tools",
      "/dev/nvidia0",
    ]);
    expect(oci.linux.resources.devices).toContainEqual({ allow: true, type: "c", major: 195, minor: 0, access: "rwm" });
  }],
  [/^gpu-bridge-host cdi apply .* nvidia\.com\/gpu=7 \|\| true$/, (r) => {
    expect(r.out).toBe("");
    expect(r.err).toContain("Unresolvable CDI devices nvidia.com/gpu=7: no spec defines it. Searched cdi-demo (1 spec file);");
    expect(r.err).not.toContain("config.json"); // no file in the folder was skipped as a broken spec
    expect(r.err).toContain(`the devices there: ${[...NAMES].sort().join(", ")}`);
  }],
  [/^gpu-bridge-host cdi list --spec-dir cdi-demo\/none/, (r) => {
    expect(r.code).toBe(0);
    expect(r.out).toBe("");
    expect(r.err).toContain("No CDI device found: searched cdi-demo/none (missing)");
  }],
];

test("the README's CDI walkthrough runs as written on a machine without GPUs, and says what it claims", () => {
  const lines = walkthrough(readFileSync(join(REPO, "README.md"), "utf8"), "cdi");
  const cwd = tempFolder("cdi-walkthrough-");
  const bin = join(cwd, ".bin");
  mkdirSync(bin);
  // The installed executable's stand-in. As root, list and apply would keep their cache in /run:
  // the stand-in gives them one in the test's folder, so the test leaves nothing behind.
  writeFileSync(
    join(bin, "gpu-bridge-host"),
    `#!/bin/sh
if [ "$1" = cdi ] && { [ "$2" = list ] || [ "$2" = apply ]; }; then
  sub=$2; shift 2; set -- cdi "$sub" --cache-dir "${join(cwd, ".cache")}" "$@"
fi
exec "${process.execPath}" "${join(REPO, "src", "main.ts")}" "$@"
`,
  );
  chmodSync(join(bin, "gpu-bridge-host"), 0o755);
  const env = { PATH: `${bin}:${process.env.PATH}`, HOME: cwd, LANG: "C.UTF-8" };
  const used = new Set<number>();
  for (const line of lines) {
    const i = CHECKS.findIndex(([re]) => re.test(line));
    if (i < 0) throw new Error(`The README's CDI walkthrough has a line this test does not check: ${line}`);
    used.add(i);
    const p = Bun.spawnSync(["sh", "-c", line], { cwd, env });
    const ran = { line, code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
    try {
      CHECKS[i]![1](ran, cwd);
    } catch (error) {
      throw new Error(`README line: ${line}\nexit ${ran.code}\nstdout: ${ran.out}\nstderr: ${ran.err}`, { cause: error });
    }
  }
  expect(CHECKS.filter((_, i) => !used.has(i)).map(([re]) => re.source)).toEqual([]);
}, 60_000);

test("walkthrough() takes the lines between the markers, and refuses a README without them", () => {
  const md = "x\n<!-- walkthrough:cdi -->\n\n```sh\na --b   # c\n\n# only a comment\nd\n```\n\n<!-- /walkthrough:cdi -->\n```sh\ne\n```";
  expect(walkthrough(md, "cdi")).toEqual(["a --b   # c", "d"]);
  expect(() => walkthrough("```sh\na\n```", "cdi")).toThrow("README.md has no walkthrough:cdi block");
});
