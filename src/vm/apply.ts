/**
 * What the bridge does with lines the VM's clients wrote (contract section 12), found by
 * read-back: they are kept in every republish; lease and control lines are acted on.
 */
import type { HostState } from "../host/state.ts";
import type { VmFile } from "./limits.ts";

/** Acts on `lines`, new in the VM's `file` of `gpuId`, oldest first. */
export function applyVmLines(host: HostState, gpuId: string, file: VmFile, lines: readonly string[]): void {
  host.vmLines(gpuId, file, lines);
}
