/** The VM side's numbers (contract section 12), shared by the bridge, the CLI and the mock VM. */

/** The files of a GPU node that the VM's clients append to. `job` exists in one VM variant. */
export type VmFile = "ctl" | "lease" | "status" | "job";

/**
 * Append caps of the VM's node files (section 12), bytes of the whole file. The job file's cap
 * is not documented; 32 KiB, like status, is our assumption.
 */
export const VM_CAPS: Readonly<Record<VmFile, number>> = Object.freeze({ ctl: 1024, lease: 1024, status: 32 * 1024, job: 32 * 1024 });

/** Default period of the idle read-back of the VM's node files, in ms (`--readback-ms`). */
export const DEFAULT_READBACK_MS = 2000;
