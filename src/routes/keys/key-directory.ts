import { askAuthority, type KeyAuthority, type Outcome } from "../../durable-objects/key-authority";
import { ApiError } from "../../errors";
import { databaseFor } from "../../storage/db";
import { keyInDirectory } from "../../storage/key-record";

/**
 * Asks `keyId`'s authority, once the directory (D1) says the key is one of `orgId`'s: a made-up id in
 * a path answers 404 without creating a Durable Object for it (each would be an object that exists
 * forever, one per guess). A key that exists, revoked included, goes to its authority, which judges
 * it and answers as a change does (waiting out its leases).
 * @example const row = await askKeyOfOrg(c.env, orgId, keyId, (a) => a.setDisabled(keyId, orgId, actor, false));
 */
export async function askKeyOfOrg<T>(
  env: Env,
  orgId: string,
  keyId: string,
  call: (authority: DurableObjectStub<KeyAuthority>) => Promise<Outcome<T>>,
): Promise<T> {
  if (!(await keyInDirectory(databaseFor(env, orgId), keyId, orgId))) throw new ApiError("NOT_FOUND", "No such key.");
  return askAuthority(env, keyId, call);
}

/**
 * The 404 for a key of `orgId` that the directory shows revoked, answered only once its authority has
 * waited out the leases granted before the revoke: a revoke may still be waiting on them, and a client
 * that reads this 404 as "revoked" must be right everywhere. A row missing from the directory is
 * answered at once (no lease was ever granted on it here).
 * @example if (!row || row.revokedAt !== null) throw await noSuchKey(c.env, keyId, row);
 */
export async function noSuchKey(env: Env, keyId: string, row: { revokedAt: number | null } | undefined | null): Promise<ApiError> {
  if (row) await askAuthority(env, keyId, (a) => a.settle());
  return new ApiError("NOT_FOUND", "No such key.");
}
