/**
 * Leases: how long an edge may answer from what an authority told it, without asking again.
 *
 * The edge starts a lease's clock *before* it asks, and the authority starts its own when it grants,
 * so the edge's copy always ends no later than the authority's, whatever the two clocks read (only
 * their rates must agree, not their times). A change waits out the leases its authority granted on
 * the old state before it answers: when the management call returns, no edge holds one.
 */

/** T when `LEASE_MS` is not set: a revoke waits at most this long, and an idle key costs one call per T. */
export const DEFAULT_LEASE_MS = 2_000;
/** Bounds on `LEASE_MS`: below 10 ms leases save nothing, above a minute a revoke would wait too long. */
const MIN_LEASE_MS = 10;
const MAX_LEASE_MS = 60_000;

/**
 * The lease duration T in ms from the `LEASE_MS` variable (wrangler.toml `[vars]`), which the edge and
 * the authorities read alike.
 * @example leaseMs(env.LEASE_MS) // 2000
 */
export function leaseMs(value: string | undefined): number {
  const ms = Number(value);
  return Number.isFinite(ms) && ms >= MIN_LEASE_MS && ms <= MAX_LEASE_MS ? ms : DEFAULT_LEASE_MS;
}

/** The verification modes and what each promises about a change that has returned. */
export const VERIFY_MODES = ["lease", "strict", "cached"] as const;
export type VerifyMode = (typeof VERIFY_MODES)[number];
