/**
 * Revocation latency: how long `DELETE /v1/orgs/{orgId}/keys/{keyId}` takes to return, timed by the
 * client, one key per call. With `verifyFirst`, each key is verified (default mode: the isolate takes a
 * lease) immediately before its revoke, so the revoke has a lease to wait out; without it, the keys were
 * never verified and no lease is outstanding. Used by `bench/run.ts`; kept apart so that the same
 * measurement can be run against an older commit.
 */

export interface RevokeStats {
  n: number;
  lanes: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export async function revokeLatencies(options: {
  base: string;
  orgId: string;
  adminKey: string;
  /** The keys to revoke, with their ids (same order); each is revoked once. */
  keys: string[];
  ids: string[];
  /** Revokes in flight at once: each key has its own authority, so lanes do not queue behind each other. */
  lanes: number;
  verifyFirst: boolean;
}): Promise<RevokeStats> {
  const { base, orgId, adminKey, keys, ids, lanes, verifyFirst } = options;
  const times: number[] = [];
  let next = 0;
  async function lane() {
    for (let i = next++; i < keys.length; i = next++) {
      if (verifyFirst) {
        const res = await fetch(`${base}/v1/keys/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: keys[i] }) });
        const body = (await res.json()) as { code?: string };
        if (body.code !== "VALID") throw new Error(`revoke bench: key ${i} verified as ${body.code}`);
      }
      const started = performance.now();
      const res = await fetch(`${base}/v1/orgs/${orgId}/keys/${ids[i]}`, { method: "DELETE", headers: { authorization: `Bearer ${adminKey}` } });
      await res.arrayBuffer();
      times.push(performance.now() - started);
      if (res.status !== 204) throw new Error(`revoke bench: DELETE answered ${res.status}`);
    }
  }
  await Promise.all(Array.from({ length: lanes }, lane));
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number) => Number(x.toFixed(1));
  return {
    n: sorted.length,
    lanes,
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    meanMs: round(sorted.reduce((s, x) => s + x, 0) / sorted.length),
    minMs: round(sorted[0]!),
    maxMs: round(sorted[sorted.length - 1]!),
  };
}
