/** `cdi apply` and `cdi list` through the command line, on spec folders and real /dev nodes. */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/main.ts";
import { memoryStdio, tempFolder } from "../helpers.ts";

/** The validated-spec cache in a folder of the test's own (as root, the default is /run). */
const CACHE = ["--cache-dir", join(tempFolder("cdi-cmd-cache-"), "cache")];
const ENV = {};

function folders() {
  const root = tempFolder("cdi-cmd-");
  mkdirSync(join(root, "etc"));
  mkdirSync(join(root, "run"));
  writeFileSync(
    join(root, "etc", "gpu.json"),
    JSON.stringify({
      cdiVersion: "0.5.0",
      kind: "example.com/gpu",
      devices: [{ name: "0", containerEdits: { deviceNodes: [{ path: "/dev/gpu0", hostPath: "/dev/zero" }] } }],
      containerEdits: {
        env: ["FROM=etc"],
        mounts: [{ hostPath: "/etc/hostname", containerPath: "/etc/gpu-host", options: ["ro", "rbind"] }],
      },
    }),
  );
  writeFileSync(
    join(root, "run", "net.yaml"),
    "cdiVersion: 0.3.0\nkind: example.com/null\ndevices:\n  - name: a\n    containerEdits:\n      deviceNodes:\n        - path: /dev/null\n",
  );
  writeFileSync(
    join(root, "config.json"),
    JSON.stringify({
      ociVersion: "1.0.2",
      process: { env: ["FROM=image"], cwd: "/" },
      root: { path: "rootfs" },
      mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    }),
  );
  return root;
}

const io = memoryStdio;

test("apply: devices from several folders into config.json, unknown fields of the OCI spec kept", async () => {
  const root = folders();
  const t = io();
  const args = [
    "apply",
    ...CACHE,
    "--spec-dir",
    join(root, "etc"),
    "--spec-dir",
    join(root, "run"),
    "--input",
    join(root, "config.json"),
    "--output",
    join(root, "out.json"),
    "example.com/gpu=0",
    "example.com/null=a",
  ];
  expect(await main(["cdi", ...args], ENV, t.io)).toBe(0);
  const out = JSON.parse(readFileSync(join(root, "out.json"), "utf8"));
  expect(out.root).toEqual({ path: "rootfs" });
  expect(out.process).toEqual({ env: ["FROM=etc"], cwd: "/" });
  expect(out.linux.devices).toEqual([
    { path: "/dev/gpu0", type: "c", major: 1, minor: 5, fileMode: 0o666 },
    { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666 },
  ]);
  expect(out.mounts.map((m: { destination: string }) => m.destination)).toEqual(["/proc", "/etc/gpu-host"]);
});

test("apply: an unknown device writes nothing, exits 1 and names itself; stdin to stdout works", async () => {
  const root = folders();
  const t = io(readFileSync(join(root, "config.json"), "utf8"));
  const out = join(root, "never.json");
  expect(
    await main(
      ["cdi", "apply", ...CACHE, "--spec-dir", join(root, "etc"), "--output", out, "example.com/gpu=0", "example.com/gpu=9"],
      ENV,
      t.io,
    ),
  )
    .toBe(1);
  expect(existsSync(out)).toBe(false);
  expect(t.err.join("")).toContain("Unresolvable CDI devices example.com/gpu=9");
  const ok = io(readFileSync(join(root, "config.json"), "utf8"));
  expect(await main(["cdi", "apply", ...CACHE, "--spec-dir", join(root, "etc"), "example.com/gpu=0"], ENV, ok.io)).toBe(0);
  expect(JSON.parse(ok.out.join("")).linux.resources.devices).toEqual([{ allow: true, type: "c", major: 1, minor: 5, access: "rwm" }]);
});

test("apply: a config.json that is not an OCI spec is refused naming the field", async () => {
  const root = folders();
  const t = io(JSON.stringify({ process: { env: "PATH=/bin" } }));
  expect(await main(["cdi", "apply", ...CACHE, "--spec-dir", join(root, "etc"), "example.com/gpu=0"], ENV, t.io)).toBe(1);
  expect(t.err.join("")).toContain("Cannot read stdin as an OCI config.json: process.env:");
});

test("list prints the qualified names the folders resolve", async () => {
  const root = folders();
  const t = io();
  expect(await main(["cdi", "list", ...CACHE, "--spec-dir", join(root, "etc"), "--spec-dir", join(root, "run")], ENV, t.io)).toBe(0);
  expect(t.out.join("")).toBe("example.com/gpu=0\nexample.com/null=a\n");
});

test("usage errors exit 2; --help prints the cdi help", async () => {
  const t = io();
  expect(await main(["cdi", "apply"], ENV, t.io)).toBe(2);
  expect(await main(["cdi", "frobnicate"], ENV, t.io)).toBe(2);
  expect(t.err.join("")).toContain('Unknown cdi command "frobnicate"');
  expect(await main(["cdi", "--help"], ENV, t.io)).toBe(0);
  expect(t.out.join("")).toContain("cdi apply [--spec-dir DIR]...");
});
