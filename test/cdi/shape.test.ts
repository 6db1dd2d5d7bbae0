/**
 * shape.ts stands in for the valibot schemas on `cdi apply`'s path: wherever it vouches for a
 * document, the schema must accept it with an output equal to the input, and validateSpec must
 * give the same problems. Checked on every fixture, on generated specs read by both YAML
 * parsers, and on every mutation of them this file can think of (each field deleted, replaced
 * by values of every type and range, objects given unknown keys and `__proto__`).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeSpec, libraryYaml } from "../../src/cdi/codec.ts";
import { ociProblem } from "../../src/cdi/oci-schema.ts";
import { quickValidate, referenceRulesHold, specProblems, type ValidateOptions } from "../../src/cdi/rules.ts";
import { isCdiSpecData, isOciSpecData } from "../../src/cdi/shape.ts";
import { nativeYaml } from "../../src/cdi/spec-format.ts";
import { validateSpec } from "../../src/cdi/validate.ts";
import { REPO } from "../helpers.ts";

const FIXTURES = join(REPO, "test", "fixtures", "cdi");

/** A spec with every CDI 1.1.0 field set. */
const FULL = {
  cdiVersion: "1.1.0",
  kind: "example.com/gpu.x",
  annotations: { "a.example.com/k": "v" },
  devices: [{
    name: "0",
    annotations: { k: "v" },
    containerEdits: {
      env: ["A=1"],
      deviceNodes: [{
        path: "/dev/a",
        hostPath: "/dev/null",
        type: "c",
        major: 1,
        minor: 3,
        fileMode: 438,
        permissions: "rw",
        uid: 1,
        gid: 2,
      }],
      hooks: [{ hookName: "createContainer", path: "/bin/h", args: ["h", "x"], env: ["B=2"], timeout: 5 }],
      mounts: [{ hostPath: "/a", containerPath: "/b", options: ["ro", "rbind"], type: "bind" }],
      intelRdt: {
        closID: "c",
        l3CacheSchema: "L3:0=f",
        memBwSchema: "MB:0=50",
        schemata: ["x"],
        enableCMT: true,
        enableMBM: false,
        enableMonitoring: true,
      },
      additionalGids: [44, 0],
      netDevices: [{ hostInterfaceName: "eth0", name: "net0" }],
    },
  }, { name: "gpu1", containerEdits: { env: ["C=3"] } }],
  containerEdits: { env: ["D=4"], mounts: [{ hostPath: "/lib", containerPath: "/lib", options: ["rbind"] }] },
};

function bases(): { name: string; spec: unknown }[] {
  const out: { name: string; spec: unknown }[] = [{ name: "full", spec: FULL }];
  for (const f of readdirSync(FIXTURES)) out.push({ name: f, spec: JSON.parse(readFileSync(join(FIXTURES, f), "utf8")) });
  // discrete.json is what `cdi generate` writes for the mock host: as YAML, through both parsers.
  const yaml = encodeSpec(JSON.parse(readFileSync(join(FIXTURES, "discrete.json"), "utf8")), "yaml");
  out.push({ name: "generated (yaml library)", spec: libraryYaml(yaml) });
  const native = nativeYaml();
  if (native !== null) out.push({ name: "generated (Bun's YAML)", spec: native(yaml) });
  out.push({ name: "full (Bun's YAML)", spec: native?.(encodeSpec(FULL as never, "yaml")) ?? FULL });
  return out;
}

const VALUES: unknown[] = [
  null,
  undefined,
  0,
  -0,
  -1,
  1.5,
  NaN,
  Infinity,
  2 ** 32,
  2 ** 32 - 1,
  "",
  "x",
  "/abs",
  "bind",
  "c",
  "rwm",
  "createContainer",
  // Values the reference's rules refuse (referenceRulesHold must say no where specProblems words why).
  "=x",
  "0.3.0",
  "9.9.9",
  "v1.0.0",
  "x:y",
  "_x",
  "a/b",
  "rwx",
  true,
  false,
  [],
  [""],
  ["x"],
  [1],
  [null],
  {},
  { a: "b" },
  { "bad key": "x" },
  { a: 1 },
  JSON.parse('{"__proto__":"x"}'),
  { constructor: "x" },
  { prototype: "x" },
];

type Json = unknown;

/** Every path to a value inside `x`. */
function paths(x: Json, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(x)) x.forEach((y, i) => out.push(...paths(y, [...at, i])));
  else if (typeof x === "object" && x !== null) {
    for (const k of Object.keys(x)) out.push(...paths((x as Record<string, Json>)[k], [...at, k]));
  }
  return out;
}

/** `root` with the value at `path` changed by `edit` (which returns the new value, or `DELETE`). */
const DELETE = Symbol("delete");
function mutate(root: Json, path: (string | number)[], edit: (old: Json) => Json | typeof DELETE): Json {
  const copy = JSON.parse(JSON.stringify(root));
  if (path.length === 0) {
    const v = edit(copy);
    return v === DELETE ? undefined : v;
  }
  let parent = copy;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const last = path[path.length - 1]!;
  const v = edit(parent[last]);
  if (v === DELETE) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = v;
  return copy;
}

function mutants(base: Json): Json[] {
  const out: Json[] = [];
  for (const path of paths(base)) {
    out.push(mutate(base, path, () => DELETE));
    for (const v of VALUES) out.push(mutate(base, path, () => (typeof v === "object" && v !== null ? JSON.parse(JSON.stringify(v)) : v)));
    out.push(
      mutate(base, path, (old) => (typeof old === "object" && old !== null && !Array.isArray(old) ? { ...old, bogus: "x" } : DELETE)),
    );
    out.push(mutate(base, path, (old) => {
      if (typeof old !== "object" || old === null || Array.isArray(old)) return DELETE;
      return Object.assign(JSON.parse('{"__proto__":"x"}'), old);
    }));
    out.push(mutate(base, path, (old) => (Array.isArray(old) ? [...old, ...old] : DELETE)));
    out.push(mutate(base, path, (old) => (typeof old === "object" && old !== null ? Object.assign(Object.create(null), old) : DELETE)));
  }
  return out;
}

const OPTIONS: ValidateOptions[] = [{ file: "t.json", strict: false }, { file: "t.json" }, { file: "t.json", consumerVersion: "0.5.0" }];

describe("the CDI spec shape check agrees with the schema", () => {
  test("it vouches for every well-formed fixture and generated spec (the fast path is taken)", () => {
    for (const { name, spec } of bases()) {
      const full = validateSpec(spec, { file: name, strict: false });
      if (full.spec === null) continue; // nvbind's 0.7 module: the schema refuses it
      expect({ name, vouched: isCdiSpecData(spec) }).toEqual({ name, vouched: true });
    }
  });

  test("wherever it vouches, the schema accepts the same value and validateSpec gives the same problems", () => {
    let vouched = 0;
    let refused = 0;
    // The parsers' copies of the fixtures hold the same data: their mutants would repeat these.
    for (const { spec } of bases().filter((b) => !b.name.includes("YAML") && !b.name.includes("yaml"))) {
      for (const m of [spec, ...mutants(spec)]) {
        const full = validateSpec(m, OPTIONS[0]!);
        for (const o of OPTIONS) {
          const quick = quickValidate(m, o);
          if (quick === null) {
            refused++;
            continue;
          }
          vouched++;
          const reference = o === OPTIONS[0] ? full : validateSpec(m, o);
          expect(reference.spec).not.toBeNull();
          expect(quick.spec).toStrictEqual(reference.spec!);
          expect(quick.problems).toEqual(reference.problems);
        }
      }
    }
    // Both answers are exercised, many times over.
    expect(vouched).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(1000);
  }, 60_000);
});

describe("the reference's rules as a yes or no (cdi apply's path) agree with the worded rules", () => {
  test("referenceRulesHold says yes exactly where specProblems (strict false) finds no error", () => {
    let hold = 0;
    let fail = 0;
    for (const { spec } of bases().filter((b) => !b.name.includes("YAML") && !b.name.includes("yaml"))) {
      for (const m of [spec, ...mutants(spec)]) {
        if (!isCdiSpecData(m)) continue;
        const worded = specProblems(m, { file: "t.json", strict: false }).every((p) => p.severity !== "error");
        expect(referenceRulesHold(m)).toBe(worded);
        if (worded) hold++;
        else fail++;
      }
    }
    expect(hold).toBeGreaterThan(500);
    expect(fail).toBeGreaterThan(100);
  }, 60_000);
});

describe("the OCI config.json shape check agrees with the schema", () => {
  const configs = [
    { ociVersion: "1.0.2", process: { env: ["A=1"], user: { uid: 0, gid: 0, additionalGids: [1] }, cwd: "/" }, root: { path: "rootfs" } },
    {
      ociVersion: "1.0.2-dev",
      process: { user: { uid: 0, gid: 0 }, args: ["sh"], env: ["PATH=/bin"], cwd: "/" },
      mounts: [{ destination: "/proc", type: "proc", source: "proc", options: ["nosuid"] }],
      hooks: { prestart: [{ path: "/bin/h", args: ["h"], env: ["A=1"], timeout: 1 }], poststop: [] },
      linux: {
        devices: [{ path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 438, uid: 0, gid: 0 }],
        resources: { devices: [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 3, access: "rw" }] },
        intelRdt: { closID: "x" },
        netDevices: { eth0: { name: "n0" } },
        namespaces: [{ type: "pid" }],
      },
    },
  ];

  test("it vouches for well-formed configs, and wherever it vouches the schema accepts", () => {
    for (const c of configs) expect(isOciSpecData(c)).toBe(true);
    let vouched = 0;
    let refused = 0;
    for (const c of configs) {
      for (const m of mutants(c)) {
        if (!isOciSpecData(m)) {
          refused++;
          continue;
        }
        vouched++;
        expect(ociProblem(m)).toBeNull();
      }
    }
    expect(vouched).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(500);
  });
});
