/**
 * `make test` leaves nothing in the temporary folder: every test folder comes from
 * test/helpers.ts's `tempFolder` or `tempDir`, which register their own removal.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { REPO, tempFolder } from "../helpers.ts";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|mjs|js)$/.test(e.name) ? [join(dir, e.name)] : []
  );
}

test("no file under test/ but helpers.ts makes a temporary folder itself", () => {
  const direct = /\bmkdtemp(Sync)?\s*\(|\bmakeTempDir(Sync)?\s*\(|\bmkdtemp\b.*from "node:fs\/promises"/;
  const offenders = sources(join(REPO, "test"))
    .filter((f) => relative(REPO, f) !== join("test", "helpers.ts"))
    .filter((f) => readFileSync(f, "utf8").split("\n").some((line) => direct.test(line) && !line.trimStart().startsWith("*")))
    .map((f) => relative(REPO, f));
  expect(offenders).toEqual([]);
});

test("tempFolder and tempDir folders last through every hook and test and are gone when the run ends, a locked one too", () => {
  const tmp = tempFolder("tmp-cleanup-");
  const child = Bun.spawnSync([process.execPath, "test", "./test/docs/fixtures/temp-user.ts"], {
    cwd: REPO,
    env: { ...process.env, TMPDIR: tmp },
    stdout: "pipe",
    stderr: "pipe",
  });
  const out = child.stderr.toString();
  expect(out).toContain("2 pass");
  expect(child.exitCode).toBe(0);
  expect(readdirSync(tmp)).toEqual([]);
});
