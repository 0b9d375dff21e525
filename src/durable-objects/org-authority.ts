import { and, eq } from "drizzle-orm";
import type { OrgPolicy } from "../domain/policy";
import { ApiError } from "../errors";
import { auditEntry, type AuditContext } from "../storage/audit";
import { changeStatements } from "../storage/events";
import { appRecordName, loadAppOrg, loadPolicy, policyRecordName } from "../storage/key-record";
import { apps, keyAppRoles, orgPolicies } from "../storage/schema";
import { leaseMs } from "../domain/lease";
import { askAuthority } from "./key-authority";
import { ask, AUTHORITY_TIMEOUT_MS, SerializedObject, type Outcome } from "./serialized-object";

/** A lease on an org's state: its policy and, when asked, whether an app is one of its apps. */
export interface OrgLease {
  policy: OrgPolicy;
  /** Whether the app asked about belongs to this org (absent when none was asked about). */
  ownsApp?: boolean;
  ms: number;
}

/** Answers about apps kept in memory: bounded, so a flood of made-up app ids cannot grow it. */
const APP_ANSWERS_LIMIT = 10_000;

/** An app's deletion re-reads its role holders after each pass: a key given a role meanwhile gets another. */
const DELETE_PASSES = 3;

/**
 * One object per organization: the authority of what every key of the org depends on, its key
 * policy and its set of apps. Edges hold leases on it exactly as on a key's authority; a policy
 * change and an app's deletion run here, serialized, and wait out the leases granted on the old state
 * before they answer, so "when the call returns, it is in force everywhere" holds for org-wide changes
 * too, within the same bound T.
 */
export class OrgAuthority extends SerializedObject {
  private policy: OrgPolicy | undefined;
  /** appId → whether it is an app of this org, as learned from D1 (apps never change orgs). */
  private apps = new Map<string, boolean>();

  protected forget(): void {
    this.policy = undefined;
    this.apps.clear();
  }

  private async currentPolicy(orgId: string): Promise<OrgPolicy> {
    this.policy ??= await loadPolicy(this.reads, orgId);
    return this.policy;
  }

  private async ownsApp(orgId: string, appId: string): Promise<boolean> {
    let owns = this.apps.get(appId);
    if (owns === undefined) {
      // An app created after an earlier answer of "no" is impossible: ids are fresh and random.
      owns = (await loadAppOrg(this.reads, appId)) === orgId;
      if (this.apps.size >= APP_ANSWERS_LIMIT) this.apps.clear();
      this.apps.set(appId, owns);
    }
    return owns;
  }

  /** A lease on the org's policy (and on whether `appId` is one of its apps) for the edge. */
  lease(orgId: string, appId?: string): Promise<Outcome<OrgLease>> {
    return this.serialized(async () => {
      const policy = await this.currentPolicy(orgId);
      const lease: OrgLease = { policy, ms: await this.grantLease() };
      if (appId !== undefined) lease.ownsApp = await this.ownsApp(orgId, appId);
      return lease;
    });
  }

  /**
   * Replaces the org's key policy: D1 and its audit entry in one batch, then the KV record of the
   * cached mode, then the answer once every lease on the old policy has ended.
   */
  setPolicy(orgId: string, policy: OrgPolicy, actor: AuditContext): Promise<Outcome<OrgPolicy>> {
    return this.change(async () => {
      const before = await loadPolicy(this.reads, orgId);
      const now = Date.now();
      this.policy = undefined;
      const { database } = this.writes;
      await database.batch([
        database
          .insert(orgPolicies)
          .values({ orgId, ...policy, updatedAt: now })
          .onConflictDoUpdate({ target: orgPolicies.orgId, set: { ...policy, updatedAt: now } }),
        ...changeStatements(database, auditEntry(orgId, actor, "policy.update", orgId, { before, after: policy }, "org")),
      ]);
      this.policy = policy;
      this.kvWrite(policyRecordName(orgId), JSON.stringify(policy));
      return policy;
    });
  }

  /**
   * Deletes one of the org's apps: each key holding a role on it loses that role through its own
   * authority (which answers how long its leases on the role still run, without waiting), then D1
   * deletes the app and audits it. The answer waits until the keys' leases and the org's own (saying
   * the app was the org's) have all ended, at once: at most T. What it waits for the keys is kept as the
   * org's own, so every later answer about the org's changes waits for it too: a second deletion running
   * meanwhile answers NOT_FOUND only once the first is in force everywhere. 409 `APP_IN_USE` when keys
   * keep being given roles on it during every pass.
   */
  deleteApp(orgId: string, appId: string, actor: AuditContext): Promise<Outcome<{ keysChanged: number }>> {
    return this.change(async () => {
      const app = await this.reads.select({ name: apps.name }).from(apps).where(and(eq(apps.id, appId), eq(apps.orgId, orgId))).get();
      if (!app) throw new ApiError("NOT_FOUND", "No such app.");
      let keysChanged = 0;
      for (let pass = 0; pass < DELETE_PASSES; pass++) {
        const holders = await this.reads.select({ keyId: keyAppRoles.keyId }).from(keyAppRoles).where(eq(keyAppRoles.appId, appId)).all();
        const drops = await Promise.allSettled(holders.map(({ keyId }) => askAuthority(this.own, keyId, (a) => a.dropApp(keyId, appId))));
        // Kept before any failure is thrown: even a 503 answers only once the drops that landed are in force.
        // A drop that failed may have landed all the same: its key's leases, all granted before now, end within T.
        await this.holdFor(Math.max(0, ...drops.map((d) => (d.status === "fulfilled" ? d.value : this.leaseMs))));
        const failed = drops.find((d) => d.status === "rejected");
        if (failed) throw failed.reason;
        keysChanged += holders.length;
        if (await this.deleteAppRow(orgId, appId, actor, { name: app.name, keysChanged })) return { keysChanged };
      }
      throw new ApiError("CONFLICT", "Keys kept being given roles on this app while it was being deleted; retry.", { reason: "APP_IN_USE" });
    });
  }

  /** The app's row and its audit entry in one batch: false when a key was given a role on it meanwhile (the foreign key refuses). */
  private async deleteAppRow(orgId: string, appId: string, actor: AuditContext, details: Record<string, unknown>): Promise<boolean> {
    const { database } = this.writes;
    this.apps.set(appId, false);
    try {
      await database.batch([
        database.delete(apps).where(and(eq(apps.id, appId), eq(apps.orgId, orgId))),
        ...changeStatements(database, auditEntry(orgId, actor, "app.delete", appId, details, "app")),
      ]);
    } catch (err) {
      this.apps.delete(appId);
      if (err instanceof Error && /FOREIGN KEY constraint failed/i.test(err.message)) return false;
      throw err;
    }
    this.kvWrite(appRecordName(appId), null);
    return true;
  }
}

/** The stub of `orgId`'s authority. */
export function orgAuthorityFor(env: Env, orgId: string) {
  return env.ORG_AUTHORITY.get(env.ORG_AUTHORITY.idFromName(orgId)) as DurableObjectStub<OrgAuthority>;
}

/**
 * Calls `orgId`'s authority and unwraps its {@link Outcome} (see `ask`).
 * @example await askOrgAuthority(env, orgId, (a) => a.setPolicy(orgId, policy, audit));
 */
export function askOrgAuthority<T>(env: Env, orgId: string, call: (authority: DurableObjectStub<OrgAuthority>) => Promise<Outcome<T>>, timeoutMs?: number): Promise<T> {
  // A change may wait out its leases (≤ T) on top of its own work (an app's deletion: see appDeletionTimeoutMs).
  return ask(orgAuthorityFor(env, orgId), call, timeoutMs ?? AUTHORITY_TIMEOUT_MS + leaseMs(env.LEASE_MS));
}

/**
 * How long the route waits for an app's deletion: the org's authority calls the key authorities in
 * turn (each within its own timeout) before it waits out the leases. A 503 past it is safe to retry.
 */
export const appDeletionTimeoutMs = (env: Env) => 2 * AUTHORITY_TIMEOUT_MS + leaseMs(env.LEASE_MS);
