/**
 * `cdi generate --mock` on any machine: the mock GPUs' device nodes come from their own table
 * unless `--dev-root` names a tree, which is then read as on a real host.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../src/cdi/generate-command.ts";
import { MOCK_NODES, mockNode } from "../../src/cdi/mock-nodes.ts";
import { main } from "../../src/main.ts";
import { memoryLogger, memoryStdio, tempFolder } from "../helpers.ts";

const request = (devRoot: string | undefined) => ({
  backend: "mock" as const,
  sysRoot: "/",
  devRoot,
  driverRoot: tempFolder("cdi-mock-driver-"),
  csvDir: undefined,
  hookPath: undefined,
  cdiKind: undefined,
});

test("without --dev-root the mock GPUs bring their own nodes, whatever this host's /dev holds", async () => {
  const { log } = memoryLogger();
  const { spec, warnings } = await generate(request(undefined), "nvidia.com/gpu", {}, log);
  expect(warnings).toEqual([]);
  expect(spec.devices.map((d) => d.name)).toEqual([
    "0",
    "GPU-00000000-0000-4000-8000-000000000000",
    "1",
    "GPU-00000000-0000-4000-8000-000000000001",
    "all",
  ]);
  const nodes = (name: string) => spec.devices.find((d) => d.name === name)!.containerEdits.deviceNodes;
  expect(nodes("1")).toEqual([{ path: "/dev/nvidia1", type: "c", major: 195, minor: 1, fileMode: 0o666, permissions: "rwm", gid: 0 }]);
  expect(spec.containerEdits!.deviceNodes!.map((n) => [n.path, n.major, n.minor])).toEqual([
    ["/dev/nvidiactl", 195, 255],
    ["/dev/nvidia-uvm", 510, 0],
    ["/dev/nvidia-uvm-tools", 510, 1],
  ]);
  // Each node is the table's, and says so by its numbers: nothing on this host was read.
  for (const d of spec.devices) for (const n of d.containerEdits.deviceNodes ?? []) expect(mockNode(n.path)).not.toBeNull();
});

test("with --dev-root the tree is read: an empty one has no GPU node, and says where it looked", async () => {
  const empty = tempFolder("cdi-mock-dev-");
  const { log } = memoryLogger();
  await expect(generate(request(empty), "nvidia.com/gpu", {}, log)).rejects.toThrow(
    `Cannot generate a CDI spec: no GPU has a device node under ${empty}`,
  );
});

test("mockNode() answers only for the table's paths", () => {
  expect(mockNode("/dev/nvidia0")).toEqual(MOCK_NODES["/dev/nvidia0"]!);
  expect(mockNode("/dev/nvidia2")).toBeNull();
  expect(mockNode("toString")).toBeNull();
});

test("cdi generate --mock on the command line writes the spec and its folder, and says the nodes are the mock's", async () => {
  const out = join(tempFolder("cdi-mock-out-"), "new", "nvidia.json");
  const t = memoryStdio();
  expect(await main(["cdi", "generate", "--mock", "--output", out], {}, t.io)).toBe(0);
  expect(existsSync(out)).toBe(true);
  expect(t.err.join("")).toContain("--mock: the spec holds the mock GPUs' device nodes, not this host's");
});
