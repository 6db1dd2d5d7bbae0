/**
 * applyEdits() held to the reference library's rules where a plausible slip would go unseen:
 * env merged by key with the last duplicate replaced, and the edges of each list edit. Only the
 * public functions are called, so these hold however applyEdits is split inside.
 */
import { describe, expect, test } from "bun:test";
import { applyEdits, CdiApplyError } from "../../src/cdi/apply.ts";
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

  test("the input is left as it was", () => {
    const oci = spec({ process: { env: ["A=1"] } });
    applyEdits(oci, { env: ["A=2", "B=1"] }, noStat);
    expect(oci).toEqual(spec({ process: { env: ["A=1"] } }));
  });
});

test("CdiApplyError is the error class of a refused edit", () => {
  expect(() => applyEdits(spec(), { hooks: [{ hookName: "nope", path: "/x" }] }, noStat)).toThrow(CdiApplyError);
});
