/** serve's device plugin flags: parsed, defaulted, and refused with the flag and the value named. */
import { expect, test } from "bun:test";
import { parseCommand, UsageError } from "../../src/cli/options.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";

const serve = (...args: string[]) => {
  const c = parseCommand(["serve", "--mock", ...args], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  return c.options;
};
const refusal = (...args: string[]) => {
  try {
    serve(...args);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error("not refused");
};

test("off unless --k8s or --kubelet-dir; the defaults come from DEFAULTS", () => {
  expect(serve().k8s).toBeUndefined();
  expect(serve("--k8s", "--k8s-resource", "cohesix.io/gpu", "--cdi-dir", "/run/cdi").k8s).toEqual({
    kubeletDir: DEFAULTS.kubeletDir,
    resource: "cohesix.io/gpu",
    share: 1,
    pollMs: DEFAULTS.k8sPollMs,
    recoverMs: DEFAULTS.k8sRecoverMs,
    ignoredXids: [13, 31, 43, 45, 68, 109],
    nfdFile: null,
  });
  const o = serve("--kubelet-dir", "/k", "--k8s-resource", "a.b/gpu", "--cdi-dir", "/c", "--k8s-share", "4", "--k8s-ignored-xids", "");
  expect(o.k8s).toMatchObject({ kubeletDir: "/k", share: 4, ignoredXids: [] });
});

test("refusals name the flag and the value", () => {
  expect(refusal("--k8s", "--cdi-dir", "/c")).toContain("--k8s-resource");
  expect(refusal("--k8s", "--k8s-resource", "cohesix.io/gpu")).toContain("needs --cdi-dir");
  expect(refusal("--k8s", "--cdi-dir", "/c", "--k8s-resource", "gpu")).toContain('got "gpu"');
  expect(refusal("--k8s", "--cdi-dir", "/c", "--k8s-resource", "kubernetes.io/gpu")).toContain("kubernetes.io");
  expect(refusal("--k8s", "--cdi-dir", "/c", "--k8s-resource", "Cohesix.io/gpu")).toContain("Cohesix.io/gpu");
  expect(refusal("--k8s-share", "2")).toContain("--k8s-share needs the device plugin");
  expect(refusal("--k8s", "--cdi-dir", "/c", "--k8s-resource", "a.b/c", "--k8s-share", "0")).toContain("--k8s-share");
  expect(refusal("--k8s", "--cdi-dir", "/c", "--k8s-resource", "a.b/c", "--k8s-ignored-xids", "13,x")).toContain('"x"');
});
