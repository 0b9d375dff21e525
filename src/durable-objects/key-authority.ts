import { DurableObject } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { decryptSecret, encryptSecret, hashKey, timingSafeEqual } from "../domain/crypto";
import { displayPrefix, mintKey } from "../domain/key-format";
import { missingToManage, type Grant } from "../domain/permissions";
import { outlives, type OrgPolicy } from "../domain/policy";
import { ApiError, StorageUnavailableError, type ErrorCode } from "../errors";
import { db } from "../storage/db";
import { guardEnv, settledEnv } from "../storage/guarded-bindings";
import {
  accessOf,
  hasOtherAdminKey,
  isAdminKey,
  keyRecordName,
  loadKeyRow,
  loadKeyRowAndPolicy,
  recordOf,
  recordTtl,
  type KeyRecord,
  type KeyRow,
} from "../storage/key-record";
import { auditEntry, changesOf, isoOrNull, type AuditContext } from "../storage/audit";
import { apiKeys, auditLog, keyAppRoles } from "../storage/schema";

export { auditEntry, type AuditContext };

/**
 * The caller of a management operation: its audit identity and, checked inside the serialized
 * operation against the row it acts on, its access. `grants: null` is the system itself (tests,
 * app deletion), which is not limited by a key's access.
 */
export interface Actor extends AuditContext {
  grants: Grant[] | null;
  expiresAt: number | null;
}

/** A change of a key's access or metadata, applied by {@link KeyAuthority.update}. */
export interface KeyChange {
  name?: string;
  orgRole?: "none" | "member" | "admin";
  appRoles?: Record<string, "reader" | "uploader" | "developer" | "admin">;
  scopes?: string[];
  expiresAt?: number | null;
}

/** A cache fill's answer: the record it wrote, and the org's policy read in the same D1 query (null unless active). */
export interface Fill {
  record: KeyRecord;
  policy: OrgPolicy | null;
}

/**
 * What an authority method answers. Errors do not keep their class across the Durable Object
 * boundary, so a refusal or a storage fault travels as data and {@link askAuthority} turns it back
 * into the `ApiError` or `StorageUnavailableError` the app answers with (404/403/409, or 503 with
 * `Retry-After`).
 */
export type Outcome<T> =
  | { ok: true; value: T }
  | { ok: false; code: ErrorCode; message: string; details?: unknown; store?: StorageUnavailableError["store"] };

const notFound = () => new ApiError("NOT_FOUND", "No such key.");

/**
 * One object per key, named by the key id carried in the key itself. It serializes everything that
 * writes the key's KV record: cache fills on a miss, regenerate, revoke, reveal and every edit. Each
 * change deletes the KV record, commits D1, then writes the new record, so when a management call
 * returns the old record is gone, and a fill queued behind the change reads the new D1 state.
 *
 * D1 and KV calls are I/O that let other requests into the object, so a promise chain, not the
 * input gate, is what serializes them. Writes are awaited until they settle, never abandoned on a
 * timeout: the queue does not move on while a write of this object may still land. Reads keep the
 * storage seam's timeouts (an abandoned read changes nothing). Callers time out on their side.
 */
export class KeyAuthority extends DurableObject<Env> {
  private queue: Promise<unknown> = Promise.resolve();
  /** The key's row as of the last serialized operation: strict verification answers from it. */
  private row: KeyRow | undefined;
  /** The org's policy, read with the row. */
  private policy: OrgPolicy | undefined;
  /** The newest version (`updatedAt`) this object has read or committed: it never writes an older record. */
  private version = 0;

  /** Test seam: awaited between the D1 read and the KV write of a fill (see test/authority-race.test.ts). */
  fillPause: (() => Promise<void>) | null = null;
  /** Test seam: the same pause for every object (the randomized stress test varies it per fill). */
  static fillPauseAll: (() => Promise<void>) | null = null;
  /** Test seam: bindings used instead of the object's own (slow or failing storage). */
  bindings: Env | null = null;

  /**
   * Runs `task` after every earlier one, including the writes they left settling. A task may hand
   * back a write it does not wait for itself (`settling`): the caller gets its answer, the queue
   * waits for the write.
   */
  private serialized<T>(task: () => Promise<T>): Promise<Outcome<T>> {
    const run = this.queue.then(async (): Promise<Outcome<T>> => {
      try {
        return { ok: true, value: await task() };
      } catch (err) {
        // Whatever failed, the next operation starts again from D1.
        this.row = undefined;
        if (err instanceof ApiError) return { ok: false, code: err.code, message: err.message, details: err.details };
        const fault = storageFault(err);
        if (fault) return { ok: false, code: "SERVICE_UNAVAILABLE", message: "Storage is unavailable.", store: fault.store };
        console.error(JSON.stringify({ level: "error", error: err instanceof Error ? err.name : "unknown", in: "KeyAuthority" }));
        return { ok: false, code: "INTERNAL", message: "Internal error." };
      }
    });
    this.queue = run
      .then(() => this.settling)
      .then(() => (this.settling = Promise.resolve()));
    return run;
  }
  /** Writes the current task started without waiting for them; the queue waits (they never reject). */
  private settling: Promise<unknown> = Promise.resolve();

  private get own(): Env {
    return this.bindings ?? this.env;
  }

  /** Reads: behind the storage seam, with its timeouts. */
  private get reads() {
    return db(guardEnv(this.own).DB);
  }

  /** Writes: faults become `StorageUnavailableError`, but a slow write is waited for, never abandoned. */
  private get writes() {
    const env = settledEnv(this.own);
    return { database: db(env.DB), kv: env.KEYS_KV };
  }

  private async load(keyId: string, orgId?: string): Promise<KeyRow | null> {
    const row = await loadKeyRow(this.reads, keyId, orgId);
    if (row) this.seen(row);
    return row;
  }

  /** Notes a version read from D1; a read older than what this object committed is not trusted. */
  private seen(row: KeyRow): void {
    if (row.updatedAt < this.version) throw new StorageUnavailableError("d1", new Error("D1 answered with an older version of the key"));
    this.version = row.updatedAt;
  }

  /** The next version of `row`: strictly increasing, so two changes in one millisecond are still two versions. */
  private nextVersion(row: KeyRow): number {
    return Math.max(Date.now(), row.updatedAt + 1, this.version + 1);
  }

  /**
   * Removes the KV record of `hash` before a change is committed. Invalidating first is what makes
   * the guarantee hold through faults: if this fails nothing has changed (503); if the D1 commit
   * then fails, the next fill reads the unchanged row; if it succeeds, no record of the old state
   * is left for anyone to read. Fills cannot interleave: they wait in the same queue.
   */
  private async invalidate(hash: string): Promise<void> {
    await this.writes.kv.delete(keyRecordName(hash));
  }

  /** Writes a record after a committed change, without the caller waiting; the queue waits for it. */
  private prefill(hash: string, record: KeyRecord): void {
    const write = this.writes.kv.put(keyRecordName(hash), JSON.stringify(record), recordTtl(record)).catch(async () => {
      // The record may or may not have landed: remove it, so the next verification fills from D1.
      await this.writes.kv.delete(keyRecordName(hash)).catch(() => undefined);
    });
    this.settling = Promise.all([this.settling, write]);
  }

  private async currentRow(keyId: string): Promise<KeyRow | null> {
    if (this.row !== undefined) return this.row;
    const { row, policy } = await loadKeyRowAndPolicy(this.reads, keyId);
    // Only a row that exists is kept: "no such key" is never cached in memory.
    if (row) {
      this.seen(row);
      this.row = row;
      this.policy = policy;
    }
    return row;
  }

  /** The record for `hash` from D1, without touching KV. */
  private async recordFor(keyId: string, hash: string): Promise<KeyRecord> {
    const row = await this.currentRow(keyId);
    if (!row || !timingSafeEqual(row.keyHash, hash)) return { status: "unknown" };
    return recordOf(row);
  }

  /** 403 unless `actor` may manage `row` (access and lifetime), checked on the row the operation acts on. */
  private assertCanManage(actor: Actor, row: KeyRow, handsOutSecret: boolean): void {
    if (actor.grants === null) return;
    const missing = missingToManage(actor.grants, accessOf(row));
    if (missing.length) throw new ApiError("FORBIDDEN", "This key cannot manage a key with access beyond its own.", { missing });
    if (handsOutSecret && outlives(row.expiresAt, actor.expiresAt)) {
      throw new ApiError("FORBIDDEN", "This key cannot hand out a secret that outlives its own expiry.", { reason: "OUTLIVES_CALLER" });
    }
  }

  /**
   * Fills the KV record of `hash` from D1 after a cache miss, and returns it. Unknown and revoked
   * hashes get a short-lived negative record, so repeated guesses do not reach the object again.
   * The answer does not wait for the KV write; the queue does.
   */
  fill(keyId: string, hash: string): Promise<Outcome<Fill>> {
    return this.serialized(async () => {
      this.row = undefined; // a fill always reads D1: it is the cache's way back to the truth
      const record = await this.recordFor(keyId, hash);
      const pause = this.fillPause ?? KeyAuthority.fillPauseAll;
      if (pause) await pause();
      const write = this.writes.kv.put(keyRecordName(hash), JSON.stringify(record), recordTtl(record)).catch(() => undefined);
      this.settling = Promise.all([this.settling, write]);
      // The org's policy came with the row (one query), so the verifier need not read it again.
      return { record, policy: record.status === "active" ? (this.policy ?? null) : null };
    });
  }

  /** Strict verification: the authority's own view, with no cache in between. */
  check(keyId: string, hash: string): Promise<Outcome<KeyRecord>> {
    return this.serialized(() => this.recordFor(keyId, hash));
  }

  /**
   * Revokes the key, irreversibly: the KV record goes, D1 commits, then the record becomes a
   * tombstone. Revoking a revoked key writes its tombstone again and answers 404: whatever an
   * earlier attempt left behind, nothing of the key stays valid. The org's last live admin key is
   * refused (409) unless `force`.
   */
  revoke(keyId: string, orgId: string, actor: Actor, options: { force?: boolean } = {}): Promise<Outcome<true>> {
    return this.serialized(async () => {
      const row = await this.load(keyId, orgId);
      if (!row) throw notFound();
      if (row.revokedAt !== null) {
        this.row = row;
        await this.invalidate(row.keyHash);
        this.prefill(row.keyHash, recordOf(row));
        throw notFound();
      }
      this.assertCanManage(actor, row, false);
      const now = Date.now();
      if (!options.force && isAdminKey(row) && !(row.expiresAt !== null && row.expiresAt <= now)) {
        if (!(await hasOtherAdminKey(this.reads, orgId, keyId, now))) {
          throw new ApiError(
            "CONFLICT",
            "This is the organization's last live admin key: revoking it would leave no key that can manage the organization. " +
              "Create another admin key first, or repeat the call with ?force=true if you mean it.",
            { reason: "LAST_ADMIN_KEY" },
          );
        }
      }
      const version = this.nextVersion(row);
      this.row = undefined;
      await this.invalidate(row.keyHash);
      const { database } = this.writes;
      await database.batch([
        database.update(apiKeys).set({ revokedAt: now, updatedAt: version }).where(eq(apiKeys.id, keyId)),
        database.insert(auditLog).values(auditEntry(orgId, actor, "key.revoke", keyId, { name: row.name, ...(options.force ? { force: true } : {}) })),
      ]);
      this.version = version;
      this.row = { ...row, revokedAt: now, updatedAt: version };
      this.prefill(row.keyHash, recordOf(this.row));
      return true as const;
    });
  }

  /**
   * Gives the key a new secret and returns it (the only time it is shown). The old secret's record
   * is gone before this returns; id, name and access stay. `expiresAt`, when given, is the key's
   * new expiry (the way to bring back an expired key: with a new secret, never the old one).
   */
  regenerate(keyId: string, orgId: string, actor: Actor, expiresAt?: number | null): Promise<Outcome<{ key: string; row: KeyRow }>> {
    return this.serialized(async () => {
      const row = await this.load(keyId, orgId);
      if (!row || row.revokedAt !== null) throw notFound();
      const nextExpiry = expiresAt !== undefined ? expiresAt : row.expiresAt;
      this.assertCanManage(actor, { ...row, expiresAt: nextExpiry }, true);
      const key = await mintKey(keyId, this.env.KEY_TAG_SECRET);
      const version = this.nextVersion(row);
      const next: KeyRow = {
        ...row,
        keyHash: await hashKey(key),
        keyPrefix: displayPrefix(key),
        secretCiphertext: row.secure ? null : await encryptSecret(this.env.KEY_ENCRYPTION_SECRET, key, keyId),
        expiresAt: nextExpiry,
        updatedAt: version,
      };
      this.row = undefined;
      await this.invalidate(row.keyHash);
      const { database } = this.writes;
      const details: Record<string, unknown> = { name: row.name };
      if (nextExpiry !== row.expiresAt) details.changes = { expiresAt: { before: isoOrNull(row.expiresAt), after: isoOrNull(nextExpiry) } };
      await database.batch([
        database
          .update(apiKeys)
          .set({ keyHash: next.keyHash, keyPrefix: next.keyPrefix, secretCiphertext: next.secretCiphertext, expiresAt: nextExpiry, updatedAt: version })
          .where(eq(apiKeys.id, keyId)),
        database.insert(auditLog).values(auditEntry(orgId, actor, "key.regenerate", keyId, details)),
      ]);
      this.version = version;
      this.row = next;
      this.prefill(row.keyHash, { status: "revoked", keyId, orgId, version });
      this.prefill(next.keyHash, recordOf(next));
      return { key, row: next };
    });
  }

  /**
   * The full key of a non-secure key, decrypted, with the caller's rights checked on the row as it
   * is now. Audited before the secret leaves: a reveal that cannot be recorded does not happen.
   */
  reveal(keyId: string, orgId: string, actor: Actor): Promise<Outcome<{ key: string }>> {
    return this.serialized(async () => {
      const row = await this.load(keyId, orgId);
      if (!row || row.revokedAt !== null) throw notFound();
      this.assertCanManage(actor, row, true);
      if (row.secure || row.secretCiphertext === null) {
        throw new ApiError("CONFLICT", "This is a secure key: only its hash is stored, so it cannot be revealed. Regenerate it for a new secret.");
      }
      const key = await decryptSecret(this.env.KEY_ENCRYPTION_SECRET, row.secretCiphertext, row.id);
      await this.writes.database.insert(auditLog).values(auditEntry(orgId, actor, "key.reveal", keyId, { name: row.name }));
      return { key };
    });
  }

  /**
   * Applies an edit of name, access or expiry, then replaces the KV record with the new access.
   * With `expectedUpdatedAt`, applies it only if the key has not changed since the caller read it
   * (the caller judged its right to edit against that version); 409 when it has.
   */
  update(keyId: string, orgId: string, change: KeyChange, actor: AuditContext, expectedUpdatedAt?: number): Promise<Outcome<KeyRow>> {
    return this.serialized(async () => {
      const row = await this.load(keyId, orgId);
      if (!row || row.revokedAt !== null) throw notFound();
      if (expectedUpdatedAt !== undefined && row.updatedAt !== expectedUpdatedAt) {
        throw new ApiError("CONFLICT", "The key changed while this edit was being made: read it again and retry.");
      }
      const version = this.nextVersion(row);
      const next: KeyRow = {
        ...row,
        name: change.name ?? row.name,
        orgRole: change.orgRole ?? row.orgRole,
        scopes: change.scopes ?? row.scopes,
        expiresAt: change.expiresAt !== undefined ? change.expiresAt : row.expiresAt,
        appRoles: change.appRoles ?? row.appRoles,
        updatedAt: version,
      };
      if (next.orgRole === "admin") next.appRoles = {};
      const { database } = this.writes;
      const statements = [
        database
          .update(apiKeys)
          .set({ name: next.name, orgRole: next.orgRole, scopes: next.scopes, expiresAt: next.expiresAt, updatedAt: version })
          .where(eq(apiKeys.id, keyId)),
        database.insert(auditLog).values(auditEntry(orgId, actor, "key.update", keyId, { name: next.name, changes: changesOf(row, next) })),
      ] as const;
      const roleStatements =
        change.appRoles !== undefined || next.orgRole === "admin"
          ? [
              database.delete(keyAppRoles).where(eq(keyAppRoles.keyId, keyId)),
              ...Object.entries(next.appRoles).map(([appId, role]) => database.insert(keyAppRoles).values({ keyId, appId, role })),
            ]
          : [];
      this.row = undefined;
      await this.invalidate(row.keyHash);
      try {
        await database.batch([...statements, ...roleStatements]);
      } catch (err) {
        // An app deleted between the caller's check and this batch: the batch wrote nothing.
        if (err instanceof Error && /FOREIGN KEY constraint failed/i.test(err.message)) {
          const message = "names an app that no longer exists";
          throw new ApiError("INVALID_REQUEST", `Invalid body: appRoles: ${message}`, { issues: [{ field: "appRoles", message }] });
        }
        throw err;
      }
      this.version = version;
      this.row = next;
      this.prefill(next.keyHash, recordOf(next));
      return next;
    });
  }

  /**
   * Drops app roles on a deleted app from this key and refreshes its record. Called for each key
   * that held a role on the app, so the app's deletion is a change of access like any other.
   */
  dropApp(keyId: string, appId: string): Promise<Outcome<void>> {
    return this.serialized(async () => {
      const before = await this.load(keyId);
      if (!before) return;
      const version = this.nextVersion(before);
      this.row = undefined;
      await this.invalidate(before.keyHash);
      const { database } = this.writes;
      await database.batch([
        database.delete(keyAppRoles).where(and(eq(keyAppRoles.keyId, keyId), eq(keyAppRoles.appId, appId))),
        database.update(apiKeys).set({ updatedAt: version }).where(eq(apiKeys.id, keyId)),
      ]);
      this.version = version;
      const { [appId]: _dropped, ...appRoles } = before.appRoles;
      this.row = { ...before, appRoles, updatedAt: version };
      this.prefill(before.keyHash, recordOf(this.row));
    });
  }
}

function storageFault(err: unknown): StorageUnavailableError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof StorageUnavailableError) return e;
  }
  return undefined;
}

/**
 * The stub of `keyId`'s authority. The id is carried in the key itself, so the verifier needs no
 * lookup to find it.
 */
export function authorityFor(env: Env, keyId: string) {
  return env.KEY_AUTHORITY.get(env.KEY_AUTHORITY.idFromName(keyId));
}

/**
 * How long a caller waits for its key's authority. The authority waits for its own writes to settle
 * (it never abandons one), so a slow store makes the caller give up here with a 503, while the
 * operation may still complete: a retry of revoke is safe (it is idempotent in effect).
 */
export const AUTHORITY_TIMEOUT_MS = 10_000;

/**
 * Calls `keyId`'s authority and unwraps its {@link Outcome}: refusals become `ApiError`, storage
 * faults, an unreachable object and a call that takes longer than `AUTHORITY_TIMEOUT_MS` become
 * `StorageUnavailableError` (503 with `Retry-After`).
 * @example const { key } = await askAuthority(env, keyId, (a) => a.regenerate(keyId, orgId, actor));
 */
export async function askAuthority<T>(
  env: Env,
  keyId: string,
  call: (authority: DurableObjectStub<KeyAuthority>) => Promise<Outcome<T>>,
  timeoutMs = AUTHORITY_TIMEOUT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let outcome: Outcome<T>;
  try {
    outcome = await Promise.race([
      call(authorityFor(env, keyId) as DurableObjectStub<KeyAuthority>),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the key authority did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw new StorageUnavailableError("authority", err);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  if (outcome.ok) return outcome.value;
  if (outcome.code === "SERVICE_UNAVAILABLE") throw new StorageUnavailableError(outcome.store ?? "authority", new Error(outcome.message));
  throw new ApiError(outcome.code, outcome.message, outcome.details);
}
