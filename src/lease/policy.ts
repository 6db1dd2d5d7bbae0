/**
 * The operator's lease policy (serve --max-ttl-s, --max-lease-mem-mb, --max-lease-streams,
 * --lease-mem-mb, --lease-streams, --lease-ttl-s, or the same keys in a --config file): the
 * maxima every grant, amendment and renewal is held to, whoever asks (the API, a control line,
 * a lease record the VM wrote, a Kubernetes allocation), and the terms a request may leave out.
 * Pure: the lease manager applies it (src/lease/manager.ts), the API and control lines fill in
 * the defaults with `withDefaults`.
 */
import { DEFAULTS } from "../config/defaults.ts";
import { MAX_STREAMS, MAX_TTL_S } from "../config/limits.ts";
import { LeaseError, type LeaseRequest } from "./types.ts";

export interface LeasePolicy {
  /** The longest TTL a lease may be granted, amended or renewed for (at most MAX_TTL_S). */
  readonly maxTtlS: number;
  /** The most memory one lease may hold; null: no maximum but the GPU's. */
  readonly maxMemMb: number | null;
  /** The most streams one lease may hold (at most MAX_STREAMS). */
  readonly maxStreams: number;
  /** The memory a request that gives none gets; null: a request must give it. */
  readonly memMb: number | null;
  /** The streams a request that gives none gets; null: a request must give it. */
  readonly streams: number | null;
  /** The TTL a request that gives none gets. */
  readonly ttlS: number;
}

/** What a bridge enforces when nothing is set: the host's hard limits, no default size. */
export const DEFAULT_LEASE_POLICY: LeasePolicy = Object.freeze({
  maxTtlS: MAX_TTL_S,
  maxMemMb: null,
  maxStreams: MAX_STREAMS,
  memMb: null,
  streams: null,
  ttlS: DEFAULTS.leaseTtlS,
});

export type PolicyTerm = "mem_mb" | "streams" | "ttl_s";

/** The setting (a serve flag without its dashes, and a --config key) behind each maximum and default. */
export const POLICY_KEYS: Readonly<Record<PolicyTerm, { readonly max: string; readonly fallback: string }>> = {
  mem_mb: { max: "max-lease-mem-mb", fallback: "lease-mem-mb" },
  streams: { max: "max-lease-streams", fallback: "lease-streams" },
  ttl_s: { max: "max-ttl-s", fallback: "lease-ttl-s" },
};

/**
 * How a setting is named in a refusal: the flag and the config key are the same words. Kept
 * short: a refusal sent back to the VM is cut at one echo payload, and what matters comes first.
 */
const setting = (key: string, value?: number) => `${key}${value === undefined ? "" : ` ${value}`} (a serve flag and --config key)`;

/** The maximum `policy` sets for `term`; null: none. */
export function maximumOf(policy: LeasePolicy, term: PolicyTerm): number | null {
  return term === "mem_mb" ? policy.maxMemMb : term === "streams" ? policy.maxStreams : policy.maxTtlS;
}

/** A LeaseError (invalid) naming the field, the value, the limit and the setting when `value` is over `term`'s maximum; null when not. */
export function overMaximum(policy: LeasePolicy, term: PolicyTerm, value: number): LeaseError | null {
  const max = maximumOf(policy, term);
  if (max === null || value <= max) return null;
  return new LeaseError(
    "invalid",
    `${term} ${value} is over ${setting(POLICY_KEYS[term].max, max)}`,
    term,
  );
}

/** Throws the first of `terms` over its maximum (memory, streams, then TTL). */
export function checkPolicy(policy: LeasePolicy, terms: Pick<LeaseRequest, PolicyTerm>): void {
  for (const term of ["mem_mb", "streams", "ttl_s"] as const) {
    const refusal = overMaximum(policy, term, terms[term]);
    if (refusal !== null) throw refusal;
  }
}

/** Why a lease's terms break `policy` (a journal's lease after the maxima were lowered), or null. */
export function policyProblem(policy: LeasePolicy, terms: Pick<LeaseRequest, PolicyTerm>): string | null {
  try {
    checkPolicy(policy, terms);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * `asked`'s terms, each one left out taken from `policy`'s default. A term left out with no
 * default is refused with `missing(term)`, which says how the request should have named it.
 */
export function withDefaults<T extends Partial<Pick<LeaseRequest, PolicyTerm>>>(
  policy: LeasePolicy,
  asked: T,
  missing: (term: PolicyTerm) => string,
): Omit<T, PolicyTerm> & Pick<LeaseRequest, PolicyTerm> {
  const fallback = { mem_mb: policy.memMb, streams: policy.streams, ttl_s: policy.ttlS };
  const out: Record<string, unknown> = { ...asked };
  for (const term of ["mem_mb", "streams", "ttl_s"] as const) {
    if (out[term] !== undefined) continue;
    const value = fallback[term];
    if (value === null) {
      throw new LeaseError("invalid", `${missing(term)}: this bridge sets no default ${setting(POLICY_KEYS[term].fallback)}`, term);
    }
    out[term] = value;
  }
  return out as Omit<T, PolicyTerm> & Pick<LeaseRequest, PolicyTerm>;
}
