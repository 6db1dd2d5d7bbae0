/**
 * One line of the doctor's report. `fail`: something the given flags need does not work (the
 * exit status is 1); `warn`: broken or missing, but not needed for these flags; `info`: a fact
 * worth knowing (including "unknown", said as such).
 */
export type Status = "ok" | "fail" | "warn" | "info";

export interface Check {
  /** The group it is printed under: `libraries`, `gpus`, `device nodes`, `ptx`, ... */
  readonly section: string;
  readonly name: string;
  readonly status: Status;
  readonly detail: string;
  /** What to do, for `fail` and `warn`. */
  readonly fix?: string;
}

/** A check, built with its fields in the order they print. */
export const check = (section: string, name: string, status: Status, detail: string, fix?: string): Check => ({
  section,
  name,
  status,
  detail,
  ...(fix !== undefined && (status === "fail" || status === "warn") && { fix }),
});

/** A GPU as one backend sees it. */
export interface SeenGpu {
  readonly index: number;
  readonly name: string;
  readonly uuid: string;
  /** Normalised `dddd:bb:dd.f`, or null where the backend has none. */
  readonly pci: string | null;
  /** `8.0`, or null when the backend cannot tell. */
  readonly cc: string | null;
}
