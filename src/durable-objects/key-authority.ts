import { DurableObject } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { encryptSecret, hashKey, timingSafeEqual } from "../domain/crypto";
import { displayPrefix, mintKey } from "../domain/key-format";
import type { OrgPolicy } from "../domain/policy";
import { db } from "../storage/db";
import { guardEnv } from "../storage/guarded-bindings";
import {
  keyRecordName,
  loadKeyRow,
  loadKeyRowAndPolicy,
  recordOf,
  TOMBSTONE_TTL_SECONDS,
  type KeyRecord,
  type KeyRow,
} from "../storage/key-record";
import { apiKeys, auditLog, keyAppRoles } from "../storage/schema";

/** Who asked for a change, for the audit entry written in the same D1 batch as the change. */
export interface AuditContext {
  actorKeyId: string | null;
  requestId: string;
}

/** A change of a key's access or metadata, applied by {@link KeyAuthority.update}. */
export interface KeyChange {
  name?: string;
  orgRole?: "none" | "member" | "admin";
  appRoles?: Record<string, "reader" | "uploader" | "developer" | "admin">;
  scopes?: string[];
  expiresAt?: number | null;
}

/**
 * One object per key, named by the key id carried in the key itself. It serializes everything that
 * writes the key's KV record: cache fills on a miss, regenerate, revoke and every edit. Each change
 * commits D1, then replaces the KV record, then answers, so when a management call returns the old
 * record is gone, and a fill queued behind the change reads the new D1 state.
 *
 * D1 and KV calls are I/O that let other requests into the object, so a promise chain, not the
 * input gate, is what serializes them.
 */
/** A cache fill's answer: the record it wrote, and the org's policy read in the same D1 query (null unless active). */
export interface Fill {
  record: KeyRecord;
  policy: OrgPolicy | null;
}

export class KeyAuthority extends DurableObject<Env> {
  private queue: Promise<unknown> = Promise.resolve();
  /** The key's row as of the last serialized operation: strict verification answers from it. */
  private row: KeyRow | null | undefined;
  /** The org's policy, read with the row. */
  private policy: OrgPolicy | undefined;

  /** Test seam: awaited between the D1 read and the KV write of a fill (see test/authority-race.test.ts). */
  fillPause: (() => Promise<void>) | null = null;

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** D1 and KV behind the storage seam: faults become `StorageUnavailableError`, stalls time out. */
  private get store() {
    return guardEnv(this.env);
  }

  private get database() {
    return db(this.store.DB);
  }

  /**
   * Removes the KV record of `hash` before a change is committed. Invalidating first is what makes
   * the guarantee hold through faults: if this fails nothing has changed (503); if the D1 commit
   * then fails, the next fill reads the unchanged row; if it succeeds, no record of the old state
   * is left for anyone to read. Fills cannot interleave: they wait in the same queue.
   */
  private async invalidate(hash: string): Promise<void> {
    await this.store.KEYS_KV.delete(keyRecordName(hash));
  }

  /** Writes a record after a committed change. Only an optimization: a miss refills it from D1. */
  private async prefill(hash: string, record: KeyRecord): Promise<void> {
    const options = record.status === "active" ? undefined : { expirationTtl: TOMBSTONE_TTL_SECONDS };
    await this.store.KEYS_KV.put(keyRecordName(hash), JSON.stringify(record), options).catch(() => undefined);
  }

  private async currentRow(keyId: string): Promise<KeyRow | null> {
    if (this.row === undefined) ({ row: this.row, policy: this.policy } = await loadKeyRowAndPolicy(this.database, keyId));
    return this.row;
  }

  /** The record for `hash` from D1, without touching KV. */
  private async recordFor(keyId: string, hash: string): Promise<KeyRecord> {
    const row = await this.currentRow(keyId);
    if (!row || !timingSafeEqual(row.keyHash, hash)) return { status: "unknown" };
    return recordOf(row);
  }

  /**
   * Fills the KV record of `hash` from D1 after a cache miss, and returns it. Unknown and revoked
   * hashes get a short-lived negative record, so repeated guesses do not reach the object again.
   */
  fill(keyId: string, hash: string): Promise<Fill> {
    return this.serialized(async () => {
      this.row = undefined; // a fill always reads D1: it is the cache's way back to the truth
      const record = await this.recordFor(keyId, hash);
      if (this.fillPause) await this.fillPause();
      await this.store.KEYS_KV.put(
        keyRecordName(hash),
        JSON.stringify(record),
        record.status === "active" ? undefined : { expirationTtl: TOMBSTONE_TTL_SECONDS },
      );
      // The org's policy came with the row (one query), so the verifier need not read it again.
      return { record, policy: record.status === "active" ? (this.policy ?? null) : null };
    });
  }

  /** Strict verification: the authority's own view, with no cache in between. */
  check(keyId: string, hash: string): Promise<KeyRecord> {
    return this.serialized(() => this.recordFor(keyId, hash));
  }

  /** Revokes the key, irreversibly: D1 first, then the KV record becomes a tombstone. */
  revoke(keyId: string, orgId: string, audit: AuditContext): Promise<boolean> {
    return this.serialized(async () => {
      const row = await loadKeyRow(this.database, keyId, orgId);
      if (!row || row.revokedAt !== null) return false;
      const now = Date.now();
      this.row = undefined;
      await this.invalidate(row.keyHash);
      await this.database.batch([
        this.database.update(apiKeys).set({ revokedAt: now, updatedAt: now }).where(eq(apiKeys.id, keyId)),
        this.database.insert(auditLog).values(auditEntry(orgId, audit, "key.revoke", keyId, { name: row.name })),
      ]);
      this.row = { ...row, revokedAt: now, updatedAt: now };
      await this.prefill(row.keyHash, recordOf(this.row));
      return true;
    });
  }

  /**
   * Gives the key a new secret and returns it (the only time it is shown). The old secret's record
   * becomes a tombstone before this returns; id, name and access stay.
   */
  regenerate(keyId: string, orgId: string, audit: AuditContext): Promise<{ key: string; row: KeyRow } | null> {
    return this.serialized(async () => {
      const row = await loadKeyRow(this.database, keyId, orgId);
      if (!row || row.revokedAt !== null) return null;
      const key = mintKey(keyId);
      const now = Date.now();
      const next: KeyRow = {
        ...row,
        keyHash: await hashKey(key),
        keyPrefix: displayPrefix(key),
        secretCiphertext: row.secure ? null : await encryptSecret(this.env.KEY_ENCRYPTION_SECRET, key, keyId),
        updatedAt: now,
      };
      this.row = undefined;
      await this.invalidate(row.keyHash);
      await this.database.batch([
        this.database
          .update(apiKeys)
          .set({ keyHash: next.keyHash, keyPrefix: next.keyPrefix, secretCiphertext: next.secretCiphertext, updatedAt: now })
          .where(eq(apiKeys.id, keyId)),
        this.database.insert(auditLog).values(auditEntry(orgId, audit, "key.regenerate", keyId, { name: row.name })),
      ]);
      this.row = next;
      await Promise.all([
        this.prefill(row.keyHash, { status: "revoked", keyId, orgId }),
        this.prefill(next.keyHash, recordOf(next)),
      ]);
      return { key, row: next };
    });
  }

  /**
   * Applies an edit of name, access or expiry, then replaces the KV record with the new access.
   * With `expectedUpdatedAt`, applies it only if the key has not changed since the caller read it
   * (the caller judged its right to edit against that version); null when not applied.
   */
  update(
    keyId: string,
    orgId: string,
    change: KeyChange,
    audit: AuditContext,
    expectedUpdatedAt?: number,
  ): Promise<KeyRow | null> {
    return this.serialized(async () => {
      const row = await loadKeyRow(this.database, keyId, orgId);
      if (!row || row.revokedAt !== null) return null;
      if (expectedUpdatedAt !== undefined && row.updatedAt !== expectedUpdatedAt) return null;
      // Strictly increasing, so two edits in one millisecond are still two versions.
      const now = Math.max(Date.now(), row.updatedAt + 1);
      const next: KeyRow = {
        ...row,
        name: change.name ?? row.name,
        orgRole: change.orgRole ?? row.orgRole,
        scopes: change.scopes ?? row.scopes,
        expiresAt: change.expiresAt !== undefined ? change.expiresAt : row.expiresAt,
        appRoles: change.appRoles ?? row.appRoles,
        updatedAt: now,
      };
      if (next.orgRole === "admin") next.appRoles = {};
      const statements = [
        this.database
          .update(apiKeys)
          .set({ name: next.name, orgRole: next.orgRole, scopes: next.scopes, expiresAt: next.expiresAt, updatedAt: now })
          .where(eq(apiKeys.id, keyId)),
        this.database.insert(auditLog).values(auditEntry(orgId, audit, "key.update", keyId, { changed: Object.keys(change) })),
      ] as const;
      const roleStatements =
        change.appRoles !== undefined || next.orgRole === "admin"
          ? [
              this.database.delete(keyAppRoles).where(eq(keyAppRoles.keyId, keyId)),
              ...Object.entries(next.appRoles).map(([appId, role]) =>
                this.database.insert(keyAppRoles).values({ keyId, appId, role }),
              ),
            ]
          : [];
      this.row = undefined;
      await this.invalidate(row.keyHash);
      await this.database.batch([...statements, ...roleStatements]);
      this.row = next;
      await this.prefill(next.keyHash, recordOf(next));
      return next;
    });
  }

  /**
   * Drops app roles on a deleted app from this key and refreshes its record. Called for each key
   * that held a role on the app, so the app's deletion is a change of access like any other.
   */
  dropApp(keyId: string, appId: string): Promise<void> {
    return this.serialized(async () => {
      this.row = undefined;
      const before = await this.currentRow(keyId);
      if (before) await this.invalidate(before.keyHash);
      this.row = undefined;
      await this.database.delete(keyAppRoles).where(and(eq(keyAppRoles.keyId, keyId), eq(keyAppRoles.appId, appId)));
      const row = await this.currentRow(keyId);
      if (row) await this.prefill(row.keyHash, recordOf(row));
    });
  }
}

export function auditEntry(
  orgId: string,
  audit: AuditContext,
  action: string,
  targetId: string,
  details?: Record<string, unknown>,
  targetType = "key",
): typeof auditLog.$inferInsert {
  return {
    orgId,
    actorKeyId: audit.actorKeyId,
    action,
    targetType,
    targetId,
    requestId: audit.requestId,
    details: details ?? null,
    createdAt: Date.now(),
  };
}

/**
 * The stub of `keyId`'s authority. The id is carried in the key itself, so the verifier needs no
 * lookup to find it.
 * @example await authorityFor(env, keyId).revoke(keyId, orgId, audit)
 */
export function authorityFor(env: Env, keyId: string) {
  return env.KEY_AUTHORITY.get(env.KEY_AUTHORITY.idFromName(keyId));
}
