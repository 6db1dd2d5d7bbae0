/** `make help` lists every .PHONY target of the Makefile, each with its line. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers.ts";

const make = Bun.which("make");

test.skipIf(make === null)("make help names every .PHONY target, each with a description, and nothing else", () => {
  const makefile = readFileSync(join(REPO, "Makefile"), "utf8");
  const phony = [...makefile.matchAll(/^\.PHONY:(.*)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
  // Every phony name is a real rule (a stale name would be listed for nothing).
  for (const t of phony) expect({ target: t, rule: new RegExp(`^${t}:`, "m").test(makefile) }).toEqual({ target: t, rule: true });
  // The ones a user reaches for must be among them.
  for (const t of ["run", "test", "build", "build-arm64", "dist", "install", "deb", "mutation", "soak", "ptx", "gpu-check", "clean"]) {
    expect(phony).toContain(t);
  }
  expect(phony.filter((t) => t.startsWith("bench")).length).toBeGreaterThan(10);

  const r = Bun.spawnSync([make!, "-s", "--no-print-directory", "help"], { cwd: REPO, env: { PATH: process.env.PATH ?? "" } });
  expect(r.exitCode).toBe(0);
  const listed = new Map<string, string>();
  for (const line of r.stdout.toString().split("\n")) {
    const m = /^ {2}([a-z0-9-]+) +(\S.*)$/.exec(line);
    if (m !== null) listed.set(m[1]!, m[2]!);
  }
  expect([...listed.keys()].sort()).toEqual([...new Set(phony)].sort());
  for (const [target, text] of listed) expect({ target, long: text.length > 10 }).toEqual({ target, long: true });
});
