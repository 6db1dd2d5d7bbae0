/**
 * When `cdi list` finds nothing and `cdi apply` cannot resolve a device, the answer says which
 * folders were searched (and what each held) and which devices do exist, through the command line.
 */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { searchedText } from "../../src/cdi/registry.ts";
import { main } from "../../src/main.ts";
import { memoryStdio, tempFolder } from "../helpers.ts";

const ENV = {};

function folders() {
  const root = tempFolder("cdi-miss-");
  for (const d of ["empty", "specs"]) mkdirSync(join(root, d));
  writeFileSync(join(root, "empty", "notes.txt"), "not a spec");
  const devices = Array.from({ length: 14 }, (_, i) => ({
    name: String(i),
    containerEdits: { deviceNodes: [{ path: `/dev/gpu${i}`, hostPath: "/dev/null" }] },
  }));
  writeFileSync(join(root, "specs", "gpu.json"), JSON.stringify({ cdiVersion: "0.5.0", kind: "example.com/gpu", devices }));
  return { root, cache: ["--cache-dir", join(root, "cache")] };
}

test("searchedText() names each folder with what it held", () => {
  expect(
    searchedText([{ dir: "/etc/cdi", files: null }, { dir: "/var/run/cdi", files: 0 }, { dir: "/x", files: 1 }, { dir: "/y", files: 3 }]),
  )
    .toBe("/etc/cdi (missing), /var/run/cdi (no .json or .yaml file), /x (1 spec file), /y (3 spec files)");
});

test("cdi list with no spec: nothing on stdout, exit 0, and stderr names every folder searched", async () => {
  const { root, cache } = folders();
  const t = memoryStdio();
  const args = ["cdi", "list", ...cache, "--spec-dir", join(root, "missing"), "--spec-dir", join(root, "empty")];
  expect(await main(args, ENV, t.io)).toBe(0);
  expect(t.out.join("")).toBe("");
  const err = t.err.join("");
  expect(err).toContain(
    `No CDI device found: searched ${join(root, "missing")} (missing), ${join(root, "empty")} (no .json or .yaml file).`,
  );
  expect(err).toContain("--spec-dir DIR");
});

test("cdi list with devices prints them and says nothing more", async () => {
  const { root, cache } = folders();
  const t = memoryStdio();
  expect(await main(["cdi", "list", ...cache, "--spec-dir", join(root, "specs")], ENV, t.io)).toBe(0);
  expect(t.out.join("").trim().split("\n").length).toBe(14);
  expect(t.err.join("")).not.toContain("No CDI device found");
});

test("cdi apply of a device that does not exist names the folders searched and the devices that do", async () => {
  const { root, cache } = folders();
  const t = memoryStdio(JSON.stringify({ ociVersion: "1.0.2", process: { env: [] } }));
  const args = ["cdi", "apply", ...cache, "--spec-dir", join(root, "missing"), "--spec-dir", join(root, "specs"), "example.com/gpu=77"];
  expect(await main(args, ENV, t.io)).toBe(1);
  expect(t.out.join("")).toBe("");
  const err = t.err.join("");
  const known = ["0", "1", "10", "11", "12", "13", "2", "3", "4", "5", "6", "7"].map((n) => `example.com/gpu=${n}`).join(", ");
  expect(err).toContain(
    `Unresolvable CDI devices example.com/gpu=77: no spec defines it. Searched ${join(root, "missing")} (missing), ${
      join(root, "specs")
    } (1 spec file); the devices there: ${known}, and 2 more (cdi list shows them all)`,
  );
});

test("cdi apply with no spec at all says no device is defined where it looked", async () => {
  const { root, cache } = folders();
  const t = memoryStdio(JSON.stringify({ ociVersion: "1.0.2" }));
  expect(await main(["cdi", "apply", ...cache, "--spec-dir", join(root, "empty"), "nvidia.com/gpu=0", "nvidia.com/gpu=1"], ENV, t.io))
    .toBe(1);
  expect(t.err.join("")).toContain(
    `Unresolvable CDI devices nvidia.com/gpu=0, nvidia.com/gpu=1: no spec defines them. Searched ${
      join(root, "empty")
    } (no .json or .yaml file); no device is defined there`,
  );
});
