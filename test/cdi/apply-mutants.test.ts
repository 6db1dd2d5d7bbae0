/**
 * applyEdits() held to the reference library's rules where a plausible slip would go unseen:
 * env merged by key with the last duplicate replaced, and the edges of each list edit. Only the
 * public functions are called, so these hold however applyEdits is split inside.
 */
import { describe, expect, test } from "bun:test";
import { applyEdits, CdiApplyError, cleanPath, mergeEdits, needsAnyHostStat, needsHostStat } from "../../src/cdi/apply.ts";
import type { HostNode } from "../../src/cdi/devnode.ts";
import type { OciSpec } from "../../src/cdi/schema.ts";

const noStat = (p: string): HostNode | null => {
  throw new Error(`stat ${p} was not expected`);
};
const spec = (o: Partial<OciSpec> = {}): OciSpec => ({ ociVersion: "1.0.2", ...o });

describe("env", () => {
  test("a key the config has twice: the last one is replaced (the generator indexes by key, last wins), the first kept", () => {
    const out = applyEdits(spec({ process: { env: ["A=1", "PATH=/bin", "A=2"] } }), { env: ["A=3"] }, noStat);
    expect(out.process!.env).toEqual(["A=1", "PATH=/bin", "A=3"]);
  });

  test("keys are whole: a prefix is another key, an entry without '=' is its own key", () => {
    const out = applyEdits(spec({ process: { env: ["FOO=1", "FLAG", "B=1"] } }), { env: ["FO=2", "FLAG=on", "B"] }, noStat);
    expect(out.process!.env).toEqual(["FOO=1", "FLAG=on", "B", "FO=2"]);
  });

  test("an empty env edit adds no process; a config without env gets one", () => {
    expect(applyEdits(spec(), { env: [] }, noStat)).toEqual(spec());
    expect(applyEdits(spec(), { env: ["X=1"] }, noStat).process).toEqual({ env: ["X=1"] });
  });

  test("a key at the start of the config's env is replaced there", () => {
    expect(applyEdits(spec({ process: { env: ["A=1", "B=1"] } }), { env: ["A=2"] }, noStat).process!.env).toStrictEqual(["A=2", "B=1"]);
  });

  test("the input is left as it was", () => {
    const oci = spec({ process: { env: ["A=1"] } });
    applyEdits(oci, { env: ["A=2", "B=1"] }, noStat);
    expect(oci).toEqual(spec({ process: { env: ["A=1"] } }));
  });
});

/** A host with one node of each kind, and what stat was asked. */
function host() {
  const asked: string[] = [];
  const nodes: Record<string, HostNode> = {
    "/dev/char": { type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
    "/dev/fifo": { type: "p", major: 7, minor: 9, fileMode: 0o600, uid: 0, gid: 0 },
  };
  const stat = (p: string): HostNode | null => (asked.push(p), nodes[p] ?? null);
  return { stat, asked };
}

describe("nothing to edit changes nothing", () => {
  test("empty edits add no process, linux, mounts or hooks", () => {
    expect(applyEdits(spec(), {}, noStat)).toStrictEqual(spec());
    expect(applyEdits(spec(), { env: [], deviceNodes: [], mounts: [], hooks: [], additionalGids: [], netDevices: [] }, noStat))
      .toStrictEqual(spec());
  });
});

describe("device nodes", () => {
  test("which nodes need the host: no type, an empty type, or major 0 unless a FIFO", () => {
    expect(needsHostStat({ path: "/d" })).toBe(true);
    expect(needsHostStat({ path: "/d", major: 195 })).toBe(true);
    expect(needsHostStat({ path: "/d", type: "", major: 195 })).toBe(true);
    expect(needsHostStat({ path: "/d", type: "c" })).toBe(true);
    expect(needsHostStat({ path: "/d", type: "b", major: 0 })).toBe(true);
    expect(needsHostStat({ path: "/d", type: "c", major: 195 })).toBe(false);
    expect(needsHostStat({ path: "/d", type: "p" })).toBe(false);
    const trusted = { path: "/t", type: "c" as const, major: 195, minor: 0 };
    expect(needsAnyHostStat([])).toBe(false);
    expect(needsAnyHostStat([trusted, trusted])).toBe(false);
    expect(needsAnyHostStat([trusted, { path: "/d" }])).toBe(true);
    expect(needsAnyHostStat([{ path: "/d" }, trusted])).toBe(true);
  });

  test("an empty type is filled from the host; a given non-zero major is kept when the type is missing", () => {
    const h = host();
    const out = applyEdits(spec(), {
      deviceNodes: [{ path: "/dev/a", hostPath: "/dev/char", type: "" }, { path: "/dev/b", hostPath: "/dev/char", major: 195, minor: 4 }],
    }, h.stat);
    expect(out.linux!.devices).toStrictEqual([
      { path: "/dev/a", type: "c", major: 1, minor: 3, fileMode: 0o666 },
      { path: "/dev/b", type: "c", major: 195, minor: 4, fileMode: 0o666 },
    ]);
    expect(h.asked).toEqual(["/dev/char", "/dev/char"]);
  });

  test("a FIFO keeps major and minor 0 whatever the host reports, and gets no cgroup rule", () => {
    const out = applyEdits(spec({ linux: {} }), { deviceNodes: [{ path: "/dev/pipe", hostPath: "/dev/fifo" }] }, host().stat);
    expect(out.linux).toStrictEqual({ devices: [{ path: "/dev/pipe", type: "p", major: 0, minor: 0, fileMode: 0o600 }] });
  });

  test("a block node gets a cgroup rule; the rules list is created when the config has none", () => {
    const out = applyEdits(spec(), { deviceNodes: [{ path: "/dev/sda", type: "b", major: 8, minor: 0 }] }, noStat);
    expect(out.linux).toStrictEqual({
      devices: [{ path: "/dev/sda", type: "b", major: 8, minor: 0 }],
      resources: { devices: [{ allow: true, type: "b", major: 8, minor: 0, access: "rwm" }] },
    });
  });

  test("no process, or no user: no uid or gid; a user of 0 gives none either; the node's own are kept", () => {
    const node = { path: "/dev/n", type: "c" as const, major: 195, minor: 0 };
    expect(applyEdits(spec(), { deviceNodes: [node] }, noStat).linux!.devices).toStrictEqual([node]);
    expect(applyEdits(spec({ process: { env: [] } }), { deviceNodes: [node] }, noStat).linux!.devices).toStrictEqual([node]);
    const zero = spec({ process: { user: { uid: 0, gid: 0 } } });
    expect(applyEdits(zero, { deviceNodes: [node] }, noStat).linux!.devices).toStrictEqual([node]);
    const user = spec({ process: { user: { uid: 1000, gid: 1001 } } });
    expect(applyEdits(user, { deviceNodes: [node] }, noStat).linux!.devices).toStrictEqual([{ ...node, uid: 1000, gid: 1001 }]);
    expect(applyEdits(user, { deviceNodes: [{ ...node, uid: 5, gid: 6 }] }, noStat).linux!.devices).toStrictEqual([
      { ...node, uid: 5, gid: 6 },
    ]);
  });

  test("a host node that cannot be read is a CdiApplyError keeping the cause; a missing one says so", () => {
    const cause = new Error("EACCES: permission denied");
    let err: unknown;
    try {
      applyEdits(spec(), { deviceNodes: [{ path: "/dev/x" }] }, () => {
        throw cause;
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CdiApplyError);
    expect((err as Error).name).toBe("CdiApplyError");
    expect((err as Error).message).toBe('Cannot stat CDI host device "/dev/x": EACCES: permission denied');
    expect((err as Error).cause).toBe(cause);
    expect(() => applyEdits(spec(), { deviceNodes: [{ path: "/dev/none" }] }, host().stat)).toThrow(
      'Cannot stat CDI host device "/dev/none": no such file',
    );
  });
});

describe("mounts", () => {
  test("a config without mounts gets exactly the edit's; no type or options are invented; options are copied", () => {
    const options = ["ro", "bind"];
    const out = applyEdits(
      spec(),
      { mounts: [{ hostPath: "/h", containerPath: "/c" }, { hostPath: "/o", containerPath: "/o", options }] },
      noStat,
    );
    expect(out.mounts).toStrictEqual([{ destination: "/c", source: "/h" }, { destination: "/o", source: "/o", options: ["ro", "bind"] }]);
    out.mounts![1]!.options!.push("changed");
    expect(options).toEqual(["ro", "bind"]);
  });
});

describe("hooks", () => {
  test("args, env and timeout copied as given (copies, not the edit's arrays), nothing invented; a config without hooks gets them", () => {
    const args = ["hook", "update-ldcache"];
    const env = ["A=1"];
    const out = applyEdits(spec(), {
      hooks: [{ hookName: "createContainer", path: "/bin/h", args, env, timeout: 3 }, { hookName: "prestart", path: "/bin/p" }],
    }, noStat);
    expect(out.hooks).toStrictEqual({
      createContainer: [{ path: "/bin/h", args: ["hook", "update-ldcache"], env: ["A=1"], timeout: 3 }],
      prestart: [{ path: "/bin/p" }],
    });
    out.hooks!.createContainer![0]!.args!.push("x");
    out.hooks!.createContainer![0]!.env!.push("x");
    expect([args, env]).toEqual([["hook", "update-ldcache"], ["A=1"]]);
  });

  test("an unknown hook name is refused naming it", () => {
    expect(() => applyEdits(spec(), { hooks: [{ hookName: "prestop", path: "/x" }] }, noStat)).toThrow(
      new CdiApplyError('Cannot apply hook: unknown hook name "prestop"'),
    );
  });
});

describe("intelRdt, additionalGids, netDevices", () => {
  test("intelRdt: every field copied in the schema's order, absent ones left out; a config without linux gets one", () => {
    const out = applyEdits(spec(), {
      intelRdt: {
        enableMonitoring: true,
        enableMBM: false,
        enableCMT: true,
        schemata: ["L3:0=ff"],
        memBwSchema: "MB:0=50",
        l3CacheSchema: "L3:0=f",
        closID: "c1",
      },
    }, noStat);
    const rdt = out.linux!.intelRdt!;
    expect(Object.keys(rdt)).toEqual(["closID", "l3CacheSchema", "memBwSchema", "schemata", "enableCMT", "enableMBM", "enableMonitoring"]);
    expect(rdt).toStrictEqual({
      closID: "c1",
      l3CacheSchema: "L3:0=f",
      memBwSchema: "MB:0=50",
      schemata: ["L3:0=ff"],
      enableCMT: true,
      enableMBM: false,
      enableMonitoring: true,
    });
    expect(applyEdits(spec(), { intelRdt: {} }, noStat).linux).toStrictEqual({ intelRdt: {} });
  });

  test("additionalGids: a config without a user gets one with exactly the new gids", () => {
    expect(applyEdits(spec(), { additionalGids: [109, 0, 44, 109] }, noStat).process).toStrictEqual({
      user: { additionalGids: [109, 44] },
    });
  });

  test("netDevices: a config without linux gets one", () => {
    expect(applyEdits(spec(), { netDevices: [{ hostInterfaceName: "eth0", name: "n0" }] }, noStat).linux).toStrictEqual({
      netDevices: { eth0: { name: "n0" } },
    });
  });
});

describe("mergeEdits()", () => {
  test("joins every list in order, the last intelRdt wins, and leaves out what no edit has", () => {
    const a = {
      env: ["A=1"],
      deviceNodes: [{ path: "/dev/a" }],
      mounts: [{ hostPath: "/a", containerPath: "/a" }],
      hooks: [{ hookName: "prestart", path: "/a" }],
      additionalGids: [1],
      intelRdt: { closID: "a" },
      netDevices: [{ hostInterfaceName: "a", name: "a" }],
    };
    const b = {
      env: ["B=1"],
      deviceNodes: [{ path: "/dev/b" }],
      mounts: [{ hostPath: "/b", containerPath: "/b" }],
      hooks: [{ hookName: "poststop", path: "/b" }],
      additionalGids: [2],
      intelRdt: { closID: "b" },
      netDevices: [{ hostInterfaceName: "b", name: "b" }],
    };
    expect(mergeEdits([a, {}, b])).toStrictEqual({
      env: ["A=1", "B=1"],
      deviceNodes: [{ path: "/dev/a" }, { path: "/dev/b" }],
      mounts: [{ hostPath: "/a", containerPath: "/a" }, { hostPath: "/b", containerPath: "/b" }],
      hooks: [{ hookName: "prestart", path: "/a" }, { hookName: "poststop", path: "/b" }],
      additionalGids: [1, 2],
      intelRdt: { closID: "b" },
      netDevices: [{ hostInterfaceName: "a", name: "a" }, { hostInterfaceName: "b", name: "b" }],
    });
    expect(mergeEdits([a, {}]).intelRdt).toStrictEqual({ closID: "a" });
    expect(mergeEdits([{}, {}])).toStrictEqual({});
    expect(a.env).toEqual(["A=1"]); // the first edit's lists are not appended to
  });
});

describe("cleanPath()", () => {
  test("empty and fully cancelled relative paths are '.'; a rooted one that climbs past the root stays at the root", () => {
    expect(cleanPath("")).toBe(".");
    expect(cleanPath("a/..")).toBe(".");
    expect(cleanPath("../a/../..")).toBe("../..");
    expect(cleanPath("/../x")).toBe("/x");
    expect(cleanPath("/")).toBe("/");
  });
});
