/**
 * The validated-spec cache of `cdi apply` and `cdi list` (src/cdi/spec-cache.ts): a hit gives
 * what a miss computed, an edited spec is never answered from the cache, what is wrong with the
 * cache is a miss, an invalid spec is never stored, the folder stays bounded and private, and a
 * cache that cannot be written never fails the command.
 */
import { describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { libraryYaml } from "../../src/cdi/codec.ts";
import { loadSpecDirs } from "../../src/cdi/registry.ts";
import { CACHE_ENTRIES, SpecCache, trustedFolder } from "../../src/cdi/spec-cache.ts";
import { nativeYaml } from "../../src/cdi/spec-format.ts";
import { main } from "../../src/main.ts";
import { memoryStdio, tempFolder } from "../helpers.ts";

const YAML = (env: string) =>
  `cdiVersion: 0.5.0\nkind: example.com/gpu\ndevices:\n  - name: "0"\n    containerEdits:\n      env: [${env}]\n      deviceNodes:\n        - path: /dev/gpu0\n          hostPath: /dev/null\n          type: c\n          major: 1\n          minor: 3\n`;

function specDir(text = YAML("A=1"), name = "gpu.yaml"): string {
  const dir = tempFolder("cdi-cache-specs-");
  writeFileSync(join(dir, name), text);
  return dir;
}

const cacheDir = () => join(tempFolder("cdi-cache-"), "cache");
const entries = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".json")).sort() : []);
const parse = nativeYaml() ?? libraryYaml;

/** Loads `dirs` through a cache in `cache` and flushes it, as the command does. */
async function load(dirs: string[], cache: string, salt?: string) {
  const c = salt === undefined ? new SpecCache(cache) : new SpecCache(cache, salt);
  const registry = await loadSpecDirs(dirs, parse, undefined, c);
  expect(await c.flush()).toBe(true);
  return registry;
}

const envOf = (r: Awaited<ReturnType<typeof load>>) => r.devices.get("example.com/gpu=0")?.device.containerEdits.env;

describe("the validated-spec cache", () => {
  test("a hit gives what the miss computed, and is what the next read uses", async () => {
    const dir = specDir();
    const cache = cacheDir();
    const miss = await load([dir], cache);
    expect(entries(cache)).toHaveLength(1);
    const hit = await load([dir], cache);
    expect(hit.specs.map((s) => s.spec)).toEqual(miss.specs.map((s) => s.spec));
    expect([...hit.devices.keys()]).toEqual([...miss.devices.keys()]);
    expect(hit.errors).toEqual([]);
    // The hit came from the entry: change the entry (not the spec) and the next read shows it.
    const entry = join(cache, entries(cache)[0]!);
    const stored = JSON.parse(readFileSync(entry, "utf8"));
    stored.spec.devices[0].containerEdits.env = ["FROM=cache"];
    writeFileSync(entry, JSON.stringify(stored));
    expect(envOf(await load([dir], cache))).toEqual(["FROM=cache"]);
  });

  test("an edited spec is a miss: the answer follows the text, never a stale entry", async () => {
    const dir = specDir();
    const cache = cacheDir();
    expect(envOf(await load([dir], cache))).toEqual(["A=1"]);
    writeFileSync(join(dir, "gpu.yaml"), YAML("A=2"));
    expect(envOf(await load([dir], cache))).toEqual(["A=2"]);
    expect(entries(cache)).toHaveLength(2);
    // The same text as JSON is another entry: the format is part of the key.
    const c = new SpecCache(cache);
    expect(c.key("json", "x")).not.toBe(c.key("yaml", "x"));
    // So is the runtime's version (its YAML parser may change).
    expect(new SpecCache(cache, "1.0.0").key("yaml", "x")).not.toBe(new SpecCache(cache, "1.0.1").key("yaml", "x"));
  });

  test("a corrupt or torn entry is a miss, and is written again", async () => {
    const dir = specDir();
    const cache = cacheDir();
    await load([dir], cache);
    const entry = join(cache, entries(cache)[0]!);
    const good = readFileSync(entry, "utf8");
    for (const bad of [good.slice(0, good.length / 2), "null", "[]", '{"kind":1}', ""]) {
      writeFileSync(entry, bad);
      const r = await load([dir], cache);
      expect(envOf(r)).toEqual(["A=1"]);
      expect(r.errors).toEqual([]);
      expect(readFileSync(entry, "utf8")).toBe(good);
    }
  });

  test("an invalid spec is never stored, and still names its problem", async () => {
    const dir = specDir(YAML("=no-key"));
    const cache = cacheDir();
    for (let i = 0; i < 2; i++) {
      const r = await load([dir], cache);
      expect(r.devices.size).toBe(0);
      expect(r.errors.join("\n")).toContain('invalid environment variable "=no-key"');
    }
    expect(entries(cache)).toEqual([]);
  });

  test(`the folder is made private (0700, entries 0600) and keeps the ${CACHE_ENTRIES} newest entries`, async () => {
    const cache = cacheDir();
    const dir = specDir();
    await load([dir], cache);
    expect(statSync(cache).mode & 0o777).toBe(0o700);
    expect(statSync(join(cache, entries(cache)[0]!)).mode & 0o777).toBe(0o600);
    // Older entries, and a temporary file a crash left behind long ago.
    for (let i = 0; i < CACHE_ENTRIES + 8; i++) {
      const path = join(cache, `${String(i).padStart(64, "0")}.json`);
      writeFileSync(path, "{}");
      utimesSync(path, 1_000_000 + i, 1_000_000 + i);
    }
    const stale = join(cache, `.${"a".repeat(64)}.1.tmp`);
    writeFileSync(stale, "");
    utimesSync(stale, 1_000_000, 1_000_000);
    writeFileSync(join(dir, "gpu.yaml"), YAML("A=3"));
    await load([dir], cache);
    const left = entries(cache);
    expect(left).toHaveLength(CACHE_ENTRIES);
    // The new entry and the newest old ones stay; the oldest go.
    expect(left).not.toContain(`${"0".repeat(64)}.json`);
    expect(left).toContain(`${String(CACHE_ENTRIES + 7).padStart(64, "0")}.json`);
    expect(existsSync(stale)).toBe(false);
  });

  test("a cache that cannot be written is skipped: the folder is still read, and reads the same", async () => {
    const dir = specDir();
    const parent = tempFolder("cdi-cache-");
    writeFileSync(join(parent, "file"), "not a folder");
    const c = new SpecCache(join(parent, "file", "cache"));
    const r = await loadSpecDirs([dir], parse, undefined, c);
    expect(envOf(r)).toEqual(["A=1"]);
    expect(await c.flush()).toBe(false);
    // An entry that cannot be read (a folder in its place) is a miss, and cannot be replaced.
    const cache = cacheDir();
    await load([dir], cache);
    const entry = join(cache, entries(cache)[0]!);
    rmSync(entry);
    mkdirSync(entry);
    const again = new SpecCache(cache);
    expect(envOf(await loadSpecDirs([dir], parse, undefined, again))).toEqual(["A=1"]);
    expect(await again.flush()).toBe(false);
  });
});

describe("the cache is written only into a folder nobody else can write", () => {
  const fake = (modes: Record<string, { uid: number; mode: number }>) => (p: string) => {
    if (modes[p] === undefined) throw new Error(`ENOENT ${p}`);
    return modes[p]!;
  };
  const tree = (over: Record<string, { uid: number; mode: number }> = {}) =>
    fake({
      "/": { uid: 0, mode: 0o40755 },
      "/run": { uid: 0, mode: 0o40755 },
      "/run/user": { uid: 0, mode: 0o40755 },
      "/run/user/1000": { uid: 1000, mode: 0o40700 },
      "/run/user/1000/c": { uid: 1000, mode: 0o40700 },
      "/tmp": { uid: 0, mode: 0o41777 },
      "/tmp/c": { uid: 1000, mode: 0o40700 },
      ...over,
    });

  test("the folder is this user's and not writable by others; each ancestor root's or this user's, not writable or sticky", () => {
    expect(trustedFolder("/run/user/1000/c", 1000, tree())).toBe(true);
    expect(trustedFolder("/run/user/1000/c/", 1000, tree())).toBe(true);
    expect(trustedFolder("/tmp/c", 1000, tree())).toBe(true); // /tmp is sticky: only 1000 may rename c
    expect(trustedFolder("/run/user/1000/c", 1001, tree())).toBe(false); // another user's folder
    expect(trustedFolder("/run/user/1000/c", 0, tree())).toBe(false); // root does not believe a user's folder
    expect(trustedFolder("/run/user/1000/c", 1000, tree({ "/run/user/1000/c": { uid: 1000, mode: 0o40770 } }))).toBe(false);
    expect(trustedFolder("/run/user/1000/c", 1000, tree({ "/run/user/1000/c": { uid: 1000, mode: 0o40702 } }))).toBe(false);
    expect(trustedFolder("/run/user/1000/c", 1000, tree({ "/run/user": { uid: 0, mode: 0o40777 } }))).toBe(false);
    expect(trustedFolder("/run/user/1000/c", 1000, tree({ "/run/user": { uid: 1001, mode: 0o40755 } }))).toBe(false);
    expect(trustedFolder("/tmp/c", 1000, tree({ "/tmp": { uid: 0, mode: 0o40777 } }))).toBe(false); // not sticky
    expect(trustedFolder("/run/user/1000/absent", 1000, tree())).toBe(false);
    expect(trustedFolder("relative/c", 1000, tree())).toBe(false);
    expect(trustedFolder("/run/user/1000/c", undefined, tree())).toBe(false);
  });

  test("a folder others can write is never written to", async () => {
    const dir = specDir();
    const cache = cacheDir();
    mkdirSync(cache, { mode: 0o700 });
    chmodSync(cache, 0o777);
    const c = new SpecCache(cache);
    expect(envOf(await loadSpecDirs([dir], parse, undefined, c))).toEqual(["A=1"]);
    expect(await c.flush()).toBe(false);
    expect(readdirSync(cache)).toEqual([]);
    chmodSync(cache, 0o700);
    expect(await c.flush()).toBe(true); // the same entries, once the folder is private
    expect(entries(cache)).toHaveLength(1);
  });

  test("a symlink planted at a temporary file's name is removed, not followed; trim touches only its own regular files", async () => {
    const dir = specDir();
    const cache = cacheDir();
    const c = new SpecCache(cache);
    const key = c.key("yaml", YAML("A=1"));
    mkdirSync(cache, { mode: 0o700 });
    const victim = join(tempFolder("cdi-victim-"), "victim");
    writeFileSync(victim, "keep me");
    symlinkSync(victim, join(cache, `.${key}.${process.pid}.tmp`));
    writeFileSync(join(cache, "notes.json"), "not an entry");
    symlinkSync(victim, join(cache, `${"f".repeat(64)}.json`));
    await loadSpecDirs([dir], parse, undefined, c);
    expect(await c.flush()).toBe(true);
    expect(readFileSync(victim, "utf8")).toBe("keep me");
    expect(lstatSync(join(cache, `${key}.json`)).isFile()).toBe(true);
    expect(readFileSync(join(cache, "notes.json"), "utf8")).toBe("not an entry");
    expect(lstatSync(join(cache, `${"f".repeat(64)}.json`)).isSymbolicLink()).toBe(true);
  });
});

describe("an entry is read only from a folder nobody else can write, and only for the bytes it was made from", () => {
  const NOBODY = 65534;
  /** `root/parent/cache`, private and root's (we run as root), with a poisoned entry for the spec's exact text. */
  function poisoned() {
    const dir = specDir();
    const root = tempFolder("cdi-poison-");
    const parent = join(root, "parent");
    const cache = join(parent, "cache");
    mkdirSync(cache, { recursive: true, mode: 0o700 });
    chmodSync(parent, 0o755);
    const key = new SpecCache(cache).key("yaml", YAML("A=1"));
    const spec = parse(YAML("A=1")) as { devices: { containerEdits: Record<string, unknown> }[] };
    spec.devices[0]!.containerEdits.env = ["LD_PRELOAD=/tmp/evil.so"];
    spec.devices[0]!.containerEdits.hooks = [{ hookName: "createRuntime", path: "/tmp/evil" }];
    writeFileSync(join(cache, `${key}.json`), JSON.stringify({ key, spec }), { mode: 0o600 });
    return { dir, root, parent, cache };
  }
  const read = async (dir: string, cache: string) => {
    const c = new SpecCache(cache);
    const r = await loadSpecDirs([dir], parse, undefined, c);
    return { env: envOf(r), hooks: r.devices.get("example.com/gpu=0")?.device.containerEdits.hooks, flushed: await c.flush() };
  };
  const SPEC = { env: ["A=1"], hooks: undefined };
  const POISON = { env: ["LD_PRELOAD=/tmp/evil.so"], hooks: [{ hookName: "createRuntime", path: "/tmp/evil" }] };

  test.skipIf(process.getuid?.() !== 0)(
    "another user's folder, or one others can write, at any level, is neither read nor written",
    async () => {
      // The control: in a private folder the (well-formed) entry is what answers.
      const control = poisoned();
      expect(await read(control.dir, control.cache)).toEqual({ ...POISON, flushed: true });
      const cases: [string, (p: ReturnType<typeof poisoned>) => void][] = [
        ["cache owned by another user", (p) => chownSync(p.cache, NOBODY, NOBODY)],
        ["cache owned by another user, 0755", (p) => (chownSync(p.cache, NOBODY, NOBODY), chmodSync(p.cache, 0o755))],
        ["cache group-writable", (p) => chmodSync(p.cache, 0o770)],
        ["cache world-writable", (p) => chmodSync(p.cache, 0o703)],
        ["cache world-writable and sticky", (p) => chmodSync(p.cache, 0o1777)],
        ["parent owned by another user", (p) => chownSync(p.parent, NOBODY, NOBODY)],
        ["parent group-writable", (p) => chmodSync(p.parent, 0o775)],
        ["parent world-writable", (p) => chmodSync(p.parent, 0o777)],
        ["grandparent owned by another user", (p) => chownSync(p.root, NOBODY, NOBODY)],
        ["grandparent world-writable", (p) => chmodSync(p.root, 0o757)],
      ];
      for (const [name, spoil] of cases) {
        const p = poisoned();
        spoil(p);
        const names = readdirSync(p.cache).sort();
        expect({ name, ...(await read(p.dir, p.cache)) }).toEqual({ name, ...SPEC, flushed: false });
        expect({ name, files: readdirSync(p.cache).sort() }).toEqual({ name, files: names }); // nothing written
      }
      // A sticky world-writable ancestor (as /tmp) is trusted: only an entry's owner may rename it.
      const sticky = poisoned();
      chmodSync(sticky.parent, 0o1777);
      expect(await read(sticky.dir, sticky.cache)).toEqual({ ...POISON, flushed: true });
    },
  );

  test.skipIf(process.getuid?.() !== 0)("cdi apply and list with such a folder answer from the specs", async () => {
    const p = poisoned();
    chownSync(p.cache, NOBODY, NOBODY);
    const t = memoryStdio(JSON.stringify({ process: { env: [] } }));
    expect(await main(["cdi", "apply", "--cache-dir", p.cache, "--spec-dir", p.dir, "example.com/gpu=0"], {}, t.io)).toBe(0);
    const out = JSON.parse(t.out.join(""));
    expect(out.process.env).toEqual(["A=1"]);
    expect(out.hooks).toBeUndefined();
  });

  test("an entry answers only for the exact spec bytes it was made from: one copied under another key is a miss", async () => {
    const dirA = specDir(YAML("A=1"));
    const dirB = specDir(YAML("B=2"));
    const cache = cacheDir();
    expect(envOf(await load([dirA], cache))).toEqual(["A=1"]);
    const [entryA] = entries(cache);
    const keyB = new SpecCache(cache).key("yaml", YAML("B=2"));
    writeFileSync(join(cache, `${keyB}.json`), readFileSync(join(cache, entryA!), "utf8"));
    expect(envOf(await load([dirB], cache))).toEqual(["B=2"]);
    // Written again for B, and B's entry now names B's key.
    expect(JSON.parse(readFileSync(join(cache, `${keyB}.json`), "utf8")).key).toBe(keyB);
  });
});

describe("cdi apply and list with the cache", () => {
  const config = JSON.stringify({ ociVersion: "1.0.2", process: { env: ["X=1"], cwd: "/" }, root: { path: "rootfs" } });
  const io = () => memoryStdio(config);

  test("apply gives the same config.json from a cold and a warm cache, and from none", async () => {
    const dir = specDir();
    const cache = cacheDir();
    const outputs: string[] = [];
    for (const flags of [["--cache-dir", cache], ["--cache-dir", cache], ["--no-cache"]]) {
      const t = io();
      expect(await main(["cdi", "apply", "--spec-dir", dir, ...flags, "example.com/gpu=0"], {}, t.io)).toBe(0);
      expect(t.err).toEqual([]);
      outputs.push(t.out.join(""));
    }
    expect(new Set(outputs).size).toBe(1);
    expect(JSON.parse(outputs[0]!).process.env).toEqual(["X=1", "A=1"]);
    expect(entries(cache)).toHaveLength(1);
  });

  test("list answers from the cache as apply does", async () => {
    const dir = specDir();
    const cache = cacheDir();
    for (let i = 0; i < 2; i++) {
      const t = io();
      expect(await main(["cdi", "list", "--cache-dir", cache, "--spec-dir", dir], {}, t.io)).toBe(0);
      expect(t.out.join("")).toBe("example.com/gpu=0\n");
    }
    expect(entries(cache)).toHaveLength(1);
  });

  test("a cache folder that cannot be made never fails apply", async () => {
    const dir = specDir();
    const parent = tempFolder("cdi-cache-");
    mkdirSync(join(parent, "ro"));
    writeFileSync(join(parent, "ro", "cache"), "a file where the folder should be");
    const t = io();
    expect(await main(["cdi", "apply", "--cache-dir", join(parent, "ro", "cache"), "--spec-dir", dir, "example.com/gpu=0"], {}, t.io)).toBe(
      0,
    );
    expect(JSON.parse(t.out.join("")).linux.devices).toEqual([{ path: "/dev/gpu0", type: "c", major: 1, minor: 3 }]);
  });
});
