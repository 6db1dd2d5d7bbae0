/** gpu-bridge-host(1), generated from the help tables: complete, and clean roff. */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { commandCatalog } from "../../src/cli/catalog.ts";
import { manPage, roff } from "../../src/cli/man.ts";
import { ENVIRONMENT } from "../../src/cli/usage.ts";
import { tempDir } from "../helpers.ts";

const page = manPage("2026-01-02");

test("roff() escapes backslashes and hyphens, and keeps a line from being read as a request", () => {
  expect(roff("a\\b --x")).toBe("a\\eb \\-\\-x");
  expect(roff(".TH evil\n'also")).toBe("\\&.TH evil\n\\&'also");
});

test("names every flag of every command, and every environment variable", () => {
  const missing: string[] = [];
  for (const e of commandCatalog()) {
    for (const flag of Object.keys(e.flags)) {
      if (flag === "help" || flag === "version" || flag === "list") continue;
      if (!page.includes(`.B \\-\\-${roff(flag)}`)) missing.push(`${e.path.join(" ") || "(bridge)"} --${flag}`);
    }
    if (e.path.length > 0) expect(page).toContain(`.SS ${roff(e.path.join(" "))}\n`);
  }
  for (const [name] of ENVIRONMENT) if (!page.includes(`.B ${roff(name)}\n`)) missing.push(name);
  expect(missing).toEqual([]);
  expect(page).toContain(".TH GPU\\-BRIDGE\\-HOST 1 2026-01-02 ");
  expect(() => manPage("Jan 2")).toThrow('manPage needs a date as YYYY-MM-DD, got "Jan 2"');
});

const man = Bun.which("man");
test.skipIf(man === null)("man renders it without a warning", () => {
  const dir = tempDir("gbh-man-");
  try {
    const file = join(dir.path, "gpu-bridge-host.1");
    writeFileSync(file, page);
    const r = Bun.spawnSync([man!, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", file], {
      env: { PATH: process.env.PATH ?? "", LC_ALL: "C.UTF-8", MANWIDTH: "80" },
    });
    expect({ code: r.exitCode, err: r.stderr.toString() }).toEqual({ code: 0, err: "" });
    expect(r.stdout.length).toBeGreaterThan(10_000);
  } finally {
    dir.cleanup();
  }
});
