/**
 * `cdi apply`, `list` and `validate` on hostile or broken input: a config.json whose objects are
 * arrays, spec-folder entries that are devices, FIFOs or too big, YAML alias bombs, deep nesting.
 * Each is refused with its reason, never applied to nothing, never read without a bound.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { libraryYaml } from "../../src/cdi/codec.ts";
import { loadSpecDirs } from "../../src/cdi/registry.ts";
import { nativeYaml } from "../../src/cdi/spec-format.ts";
import { nodeSpecFs as loadNodeSpecFs, runtimeSpecFs } from "../../src/cdi/spec-fs.ts";
import { runtimeFiles } from "../../src/runtime/files.ts";

/** The two readers: the runtime's own calls (these tests run on Bun) and node:fs. */
const bunSpecFs = runtimeSpecFs(runtimeFiles()!);
const nodeSpecFs = await loadNodeSpecFs();
import { main } from "../../src/main.ts";
import { memoryStdio, tempFolder } from "../helpers.ts";

const ENV = {};
const SPEC = {
  cdiVersion: "0.5.0",
  kind: "example.com/gpu",
  devices: [{ name: "0", containerEdits: { env: ["GPU=0"], deviceNodes: [{ path: "/dev/gpu0", hostPath: "/dev/null" }] } }],
};

function specDir(): string {
  const dir = tempFolder("cdi-hostile-");
  writeFileSync(join(dir, "gpu.json"), JSON.stringify(SPEC));
  return dir;
}

async function apply(dir: string, config: string, ...extra: string[]) {
  const t = memoryStdio(config);
  const code = await main(["cdi", "apply", "--no-cache", "--spec-dir", dir, ...extra, "example.com/gpu=0"], ENV, t.io);
  return { code, out: t.out.join(""), err: t.err.join("") };
}

test("apply: a config.json with an array (or other non-object) where the OCI spec needs an object is refused, naming the field", async () => {
  const dir = specDir();
  const cases: [string, string][] = [
    ["[]", "(root): expected an object, found an array (0 items)"],
    ['[{"ociVersion":"1.0.2"}]', "(root): expected an object, found an array (1 item)"],
    ["null", "(root): expected an object, found null"],
    ['"config"', '(root): expected an object, found a string "config"'],
    ['{"process":[]}', "process: expected an object, found an array"],
    ['{"process":{"user":[0]}}', "process.user: expected an object, found an array (1 item)"],
    ['{"linux":[]}', "linux: expected an object, found an array"],
    ['{"linux":{"resources":[]}}', "linux.resources: expected an object, found an array"],
    ['{"linux":{"intelRdt":[]}}', "linux.intelRdt: expected an object, found an array"],
    ['{"linux":{"netDevices":[]}}', "linux.netDevices: expected an object, found an array"],
    ['{"linux":{"netDevices":{"eth0":[]}}}', "linux.netDevices.eth0: expected an object, found an array"],
    ['{"hooks":[]}', "hooks: expected an object, found an array"],
    ['{"mounts":[{"destination":"/proc"},[]]}', "mounts[1]: expected an object, found an array"],
    ['{"mounts":{}}', "mounts: Invalid type: Expected Array but received Object"],
    ['{"process":{"env":["A=1",7]}}', "process.env[1]: Invalid type"],
  ];
  for (const [config, message] of cases) {
    const r = await apply(dir, config);
    expect({ config, code: r.code, out: r.out }).toEqual({ config, code: 1, out: "" });
    expect(r.err).toContain(`Cannot read stdin as an OCI config.json: ${message}`);
  }
  // The same config as an object is applied: the refusal is about the shape alone.
  const ok = await apply(dir, '{"process":{"user":{}}}');
  expect(ok.code).toBe(0);
  expect(JSON.parse(ok.out).process.env).toEqual(["GPU=0"]);
});

/** A folder of hostile entries beside two good ones (one of them reached through a symlink). */
function hostileDir(): { dir: string; hostile: Record<string, string> } {
  const root = tempFolder("cdi-endless-");
  const dir = join(root, "cdi");
  mkdirSync(dir);
  writeFileSync(join(dir, "gpu.json"), JSON.stringify(SPEC));
  // A symlink to a regular file is a spec like any other (distributions link specs in).
  writeFileSync(
    join(root, "linked.yaml"),
    "cdiVersion: 0.3.0\nkind: example.com/linked\ndevices:\n  - name: a\n    containerEdits:\n      env: [L=1]\n",
  );
  symlinkSync(join(root, "linked.yaml"), join(dir, "linked.yaml"));
  // Exactly at the cap: read. One byte more: refused, by its size.
  const at = JSON.stringify({ ...SPEC, kind: "example.com/at" });
  writeFileSync(join(dir, "at-cap.json"), at + " ".repeat(DEFAULTS.cdiSpecMaxBytes - at.length));
  writeFileSync(join(dir, "big.json"), at + " ".repeat(DEFAULTS.cdiSpecMaxBytes - at.length + 1));
  symlinkSync("/dev/zero", join(dir, "zero.json"));
  symlinkSync("/dev/urandom", join(dir, "random.yaml"));
  expect(spawnSync("mkfifo", [join(dir, "fifo.yaml")]).status).toBe(0);
  mkdirSync(join(dir, "folder.json"));
  const notRegular = "not a regular file (a device, FIFO or socket, or a link to one)";
  return {
    dir,
    hostile: {
      "zero.json": notRegular,
      "random.yaml": notRegular,
      "fifo.yaml": notRegular,
      "big.json": `it holds ${DEFAULTS.cdiSpecMaxBytes + 1} bytes, over the limit of ${DEFAULTS.cdiSpecMaxBytes} bytes for one file`,
    },
  };
}

test("spec folders: devices, FIFOs and endless files are never read, files over the cap are refused, each named with its reason", async () => {
  const { dir, hostile } = hostileDir();
  for (const [name, fs] of [["Bun", bunSpecFs], ["node:fs", nodeSpecFs]] as const) {
    const r = await loadSpecDirs([dir], nativeYaml() ?? libraryYaml, fs);
    expect({ name, devices: [...r.devices.keys()].sort() }).toEqual({
      name,
      devices: ["example.com/at=0", "example.com/gpu=0", "example.com/linked=a"],
    });
    for (const [file, why] of Object.entries(hostile)) {
      // Bun's listing leaves FIFOs out (never read, so never waited on); node:fs lists and names them.
      if (fs === bunSpecFs && file === "fifo.yaml") continue;
      // node:fs cannot know a too-big file's size without reading it: it says "more than".
      const reason = fs === nodeSpecFs && file === "big.json"
        ? why.replace(/holds \d+/, `holds more than ${DEFAULTS.cdiSpecMaxBytes}`)
        : why;
      expect(r.errors).toContain(`Cannot read ${join(dir, file)}: ${reason}`);
    }
    expect(r.errors).toHaveLength(Object.keys(hostile).length - (fs === bunSpecFs ? 1 : 0));
  }
});

test("cdi list and apply over such a folder: the good devices resolve, the rest is named; an --input that is a device is refused", async () => {
  const { dir, hostile } = hostileDir();
  const t = memoryStdio();
  expect(await main(["cdi", "list", "--no-cache", "--spec-dir", dir], ENV, t.io)).toBe(0);
  expect(t.out.join("")).toBe("example.com/at=0\nexample.com/gpu=0\nexample.com/linked=a\n");
  for (const file of Object.keys(hostile)) if (file !== "fifo.yaml") expect(t.err.join("")).toContain(`Cannot read ${join(dir, file)}: `);
  const ok = await apply(dir, "{}");
  expect(ok.code).toBe(0);
  expect(JSON.parse(ok.out).process.env).toEqual(["GPU=0"]);
  const zero = await apply(dir, "", "--input", "/dev/zero");
  expect(zero.code).toBe(1);
  expect(zero.err).toContain("Cannot read /dev/zero: not a regular file");
});

test("cdi validate: a FIFO named *.yaml, a device and a file over the cap are refused at once, naming each", async () => {
  const { dir, hostile } = hostileDir();
  const files = Object.keys(hostile).map((f) => join(dir, f));
  const t = memoryStdio();
  expect(await main(["cdi", "validate", "--no-host-check", ...files, join(dir, "linked.yaml")], ENV, t.io)).toBe(1);
  const out = t.out.join("");
  for (const file of files) expect(out).toContain(`${file}: (file): Cannot read ${file}: `);
  expect(out).toContain(`${join(dir, "linked.yaml")}: valid`);
});

/** One scalar of `scalarBytes` repeated by alias `aliases` times: the shape of the classic bomb. */
function aliasBomb(scalarBytes: number, aliases: number): string {
  let s = `cdiVersion: "0.5.0"\nkind: example.com/bomb\ndevices:\n  - name: "0"\n    containerEdits:\n      env:\n        - &big ${
    "x".repeat(scalarBytes)
  }\n`;
  for (let i = 0; i < aliases; i++) s += `        - *big\n`;
  return s;
}

test("YAML alias bombs are refused before anything is built from them (list, apply, validate)", async () => {
  const root = tempFolder("cdi-bomb-");
  const dir = join(root, "cdi");
  mkdirSync(dir);
  writeFileSync(join(dir, "gpu.json"), JSON.stringify(SPEC));
  const bomb = join(dir, "bomb.yaml");
  writeFileSync(bomb, aliasBomb(100_000, 20_000)); // 280 KB of text naming 2 GB
  const refused = `Cannot parse ${bomb} as YAML: a YAML alias *big at line 8 is refused`;
  const list = memoryStdio();
  expect(await main(["cdi", "list", "--no-cache", "--spec-dir", dir], ENV, list.io)).toBe(0);
  expect(list.out.join("")).toBe("example.com/gpu=0\n");
  expect(list.err.join("")).toContain(refused);
  const r = await apply(dir, "{}");
  expect(r.code).toBe(0);
  const bombed = memoryStdio("{}");
  expect(await main(["cdi", "apply", "--no-cache", "--spec-dir", dir, "example.com/bomb=0"], ENV, bombed.io)).toBe(1);
  expect(bombed.err.join("")).toContain(refused);
  const v = memoryStdio();
  expect(await main(["cdi", "validate", "--no-host-check", bomb], ENV, v.io)).toBe(1);
  expect(v.out.join("")).toContain(refused);
  // Even one small alias: a spec needs none. An anchor alone, and a `*` inside a string, are fine.
  writeFileSync(bomb, aliasBomb(3, 1));
  const one = await loadSpecDirs([dir], nativeYaml() ?? libraryYaml, bunSpecFs);
  expect(one.errors).toEqual([
    `Cannot parse ${bomb} as YAML: a YAML alias *big at line 8 is refused: a spec needs none, and each repeats its anchor's whole value`,
  ]);
  writeFileSync(bomb, aliasBomb(3, 0).replace("- &big xxx", '- "GLOB=/dev/nvhost-*"\n        - &anchor A=*b'));
  const fine = await loadSpecDirs([dir], nativeYaml() ?? libraryYaml, bunSpecFs);
  expect(fine.errors).toEqual([]);
  expect(fine.devices.get("example.com/bomb=0")!.device.containerEdits.env).toEqual(["GLOB=/dev/nvhost-*", "A=*b"]);
});

test("a deeply nested config.json is refused naming the input and the cause; a relative --cache-dir is refused", async () => {
  const dir = specDir();
  const deep = `{"process":{},"x":${"[".repeat(200_000)}${"]".repeat(200_000)}}`;
  const r = await apply(dir, deep);
  expect(r.code).toBe(1);
  expect(r.err).toContain("Cannot apply CDI edits to stdin: its JSON is nested too deeply");
  const t = memoryStdio("{}");
  expect(await main(["cdi", "apply", "--cache-dir", "cache", "--spec-dir", dir, "example.com/gpu=0"], ENV, t.io)).toBe(2);
  expect(t.err.join("")).toContain(
    'Option --cache-dir needs an absolute path (cdi apply runs from the runtime\'s working folder), got "cache"',
  );
});
