/**
 * The device nodes of the mock GPUs (`--mock`): what `/dev` would hold on a host with the mock
 * inventory's two GPUs, so `cdi generate --mock` and `serve --mock --cdi-dir` describe them on any
 * machine, no GPU, driver or root needed. Read in place of `lstat` only where no `--dev-root`
 * (`--cdi-root`) was given; a test's fake tree still goes through the real one.
 */
import type { HostNode } from "./devnode.ts";

const node = (major: number, minor: number): HostNode => ({ type: "c", major, minor, fileMode: 0o666, uid: 0, gid: 0 });

/**
 * By container path. 195 is the nvidia driver's fixed major (the GPUs at their NVML minors, 0 and
 * 1, `nvidiactl` at 255); `nvidia-uvm`'s major is allocated at boot, and 510 is a typical one
 * (above 255 on purpose: consumers must not truncate it).
 */
export const MOCK_NODES: Readonly<Record<string, HostNode>> = Object.freeze({
  "/dev/nvidia0": node(195, 0),
  "/dev/nvidia1": node(195, 1),
  "/dev/nvidiactl": node(195, 255),
  "/dev/nvidia-uvm": node(510, 0),
  "/dev/nvidia-uvm-tools": node(510, 1),
});

/** The mock node at `path`, or null (a stand-in for statNode). */
export const mockNode = (path: string): HostNode | null => (Object.hasOwn(MOCK_NODES, path) ? MOCK_NODES[path]! : null);
