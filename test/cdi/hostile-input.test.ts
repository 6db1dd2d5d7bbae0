/**
 * `cdi apply`, `list` and `validate` on hostile or broken input: a config.json whose objects are
 * arrays, spec-folder entries that are devices, FIFOs or too big, YAML alias bombs, deep nesting.
 * Each is refused with its reason, never applied to nothing, never read without a bound.
 */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/main.ts";
import { memoryStdio } from "../helpers.ts";

const ENV = {};
const SPEC = {
  cdiVersion: "0.5.0",
  kind: "example.com/gpu",
  devices: [{ name: "0", containerEdits: { env: ["GPU=0"], deviceNodes: [{ path: "/dev/gpu0", hostPath: "/dev/null" }] } }],
};

function specDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cdi-hostile-"));
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
