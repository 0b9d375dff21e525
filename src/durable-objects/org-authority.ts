import { and, eq } from "drizzle-orm";
import type { OrgPolicy } from "../domain/policy";
import { ApiError } from "../errors";
import { auditEntry, type AuditContext } from "../storage/audit";
import { changeStatements } from "../storage/events";
import { appRecordName, loadAppOrg, loadPolicy, policyRecordName } from "../storage/key-record";
import { apps, auditLog, orgPolicies } from "../storage/schema";
import { leaseMs } from "../domain/lease";
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
      const lease: OrgLease = { policy, ms: this.grantLease() };
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
   * Deletes an app no key holds a role on any more (the route has dropped them through each key's
   * authority): org-wide grants stop covering it once every lease saying it was the org's has ended.
   * 409 `APP_IN_USE` when a key was given a role on it meanwhile (the foreign key refuses).
   */
  deleteApp(orgId: string, appId: string, actor: AuditContext, details: Record<string, unknown>): Promise<Outcome<boolean>> {
    return this.change(async () => {
      const { database } = this.writes;
      this.apps.set(appId, false);
      try {
        const [deleted] = await database.batch([
          database.delete(apps).where(and(eq(apps.id, appId), eq(apps.orgId, orgId))).returning({ id: apps.id }),
          ...changeStatements(database, auditEntry(orgId, actor, "app.delete", appId, details, "app")),
        ]);
        if (deleted.length === 0) throw new ApiError("NOT_FOUND", "No such app.");
      } catch (err) {
        this.apps.delete(appId);
        if (err instanceof Error && /FOREIGN KEY constraint failed/i.test(err.message)) {
          throw new ApiError("CONFLICT", "Keys were given roles on this app while it was being deleted; retry.", { reason: "APP_IN_USE" });
        }
        throw err;
      }
      this.kvWrite(appRecordName(appId), null);
      return true;
    });
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
  // A change may wait out its leases (≤ T) on top of its own work.
  return ask(orgAuthorityFor(env, orgId), call, timeoutMs ?? AUTHORITY_TIMEOUT_MS + leaseMs(env.LEASE_MS));
}
