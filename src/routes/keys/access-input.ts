import { z } from "@hono/zod-openapi";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { AppRole, LegacyMode, OrgRole, Scope } from "../../domain/catalog";
import { networksWithin, normalizeNetworks } from "../../domain/allowed-networks";
import { allows, grantLabel, grantsOf, hasNoAccess, missingGrants, type Grant, type KeyAccess } from "../../domain/permissions";
import { meteringBound, meteringShortfall, type Metering, type MeteringBound } from "../../domain/metering";
import { outlives, policyViolation, resolveExpiry, type OrgPolicy } from "../../domain/policy";
import type { Actor } from "../../durable-objects/key-authority";
import { ApiError, invalidFields, type FieldIssue } from "../../errors";
import type { Db } from "../../storage/db";
import { accessOf, loadKeyRowAndPolicy, type KeyRow } from "../../storage/key-record";
import { apps } from "../../storage/schema";
import type { VerifiedKey } from "../../verification/verify-key";
import { AppRoleAssignment, ScopeSchema, Timestamp } from "../schemas";

/**
 * The one translation from a key request body (create or edit) to the evaluator's `KeyAccess`, with
 * the checks every key route shares: field-level validation the schema cannot express, expiry and
 * policy, apps of the org, and escalation (a caller never hands out or touches more than it holds).
 */

export { invalidFields, type FieldIssue } from "../../errors";

// ---------------------------------------------------------------------------------------------
// Request fields shared by create and edit
// ---------------------------------------------------------------------------------------------

export const AppRolesField = z
  .array(AppRoleAssignment)
  .max(100, "must list at most 100 apps")
  .openapi({
    description:
      "Per-app roles, for RBAC keys whose org role is not `admin` (an org admin already holds every app). " +
      "Each app must belong to the organization and appear once; granting a role needs `app:admin` on that app.",
    example: [{ appId: "01jd8x9b2c3d4e5f6g7h", role: "developer" }],
  });

export const ScopesField = z
  .array(ScopeSchema)
  .min(1, "must list at least one scope")
  .max(50, "must list at most 50 scopes")
  .openapi({
    description: "Scopes of a scoped key: at least one, from the fixed catalog. Granting a scope needs the caller to hold it.",
    example: ["app:publish", "project:deploy"],
  });

export type AppRoleInput = z.infer<typeof AppRoleAssignment>;

// ---------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------

/**
 * RBAC access from an org role and a list of app roles: each app once, no app roles beside `admin`,
 * and never a key with no access at all.
 * @example rbacAccess("none", [{ appId, role: "reader" }])
 */
export function rbacAccess(orgRole: OrgRole, appRoles: readonly AppRoleInput[] | Record<string, AppRole>): KeyAccess {
  const list = Array.isArray(appRoles)
    ? appRoles
    : Object.entries(appRoles).map(([appId, role]) => ({ appId, role }));
  const issues: FieldIssue[] = [];
  if (orgRole === "admin" && list.length > 0) {
    issues.push({ field: "appRoles", message: "must be empty when orgRole is admin (an org admin already holds every app)" });
  }
  const seen = new Set<string>();
  list.forEach(({ appId }, i) => {
    if (seen.has(appId)) issues.push({ field: `appRoles.${i}.appId`, message: "lists an app that is already listed" });
    seen.add(appId);
  });
  if (issues.length) throw invalidFields(issues);
  const access: KeyAccess = {
    kind: "rbac",
    orgRole,
    appRoles: orgRole === "admin" ? {} : Object.fromEntries(list.map((r) => [r.appId, r.role])),
  };
  if (hasNoAccess(access)) {
    throw invalidFields([
      { field: "orgRole", message: "is none and no app roles are given: the key would have no access at all" },
    ]);
  }
  return access;
}

/** Scoped access, each scope once (duplicates add nothing and are dropped). */
export function scopedAccess(scopes: readonly Scope[]): KeyAccess {
  return { kind: "scoped", scopes: [...new Set(scopes)] };
}

export function legacyAccess(mode: LegacyMode): KeyAccess {
  return { kind: "legacy", mode };
}

/** The access fields an edit may carry. */
export interface AccessEdit {
  orgRole?: OrgRole;
  appRoles?: readonly AppRoleInput[];
  scopes?: readonly Scope[];
}

const RBAC_ONLY = ["orgRole", "appRoles"] as const;
const SCOPED_ONLY = ["scopes"] as const;

/**
 * The access a key has after `edit`, or the unchanged access when the edit touches none of it.
 * Fields that do not apply to the key's kind are a 400 naming them. Legacy keys are refused by the
 * caller before this (409): they are never edited.
 */
export function editedAccess(current: KeyAccess, edit: AccessEdit): KeyAccess {
  const wrong = (fields: readonly (keyof AccessEdit)[], kind: string) =>
    fields
      .filter((f) => edit[f] !== undefined)
      .map((field) => ({ field, message: `does not apply to ${kind} keys` }));
  switch (current.kind) {
    case "rbac": {
      const issues = wrong(SCOPED_ONLY, "RBAC");
      if (issues.length) throw invalidFields(issues);
      const orgRole = edit.orgRole ?? current.orgRole;
      // Raising a key to org admin drops its app roles (admin already holds every app); otherwise
      // an edit that leaves app roles out keeps the current ones.
      const appRoles = edit.appRoles ?? (orgRole === "admin" ? [] : current.appRoles);
      return rbacAccess(orgRole, appRoles);
    }
    case "scoped": {
      const issues = wrong(RBAC_ONLY, "scoped");
      if (issues.length) throw invalidFields(issues);
      return edit.scopes ? scopedAccess(edit.scopes) : current;
    }
    case "legacy":
      throw new ApiError("CONFLICT", "Legacy keys cannot be edited: create an RBAC or scoped key instead.");
  }
}

/**
 * 400 unless every app named in `appRoles` is an app of `orgId`. Another org's app and an app that
 * does not exist get the same answer, so existence does not leak.
 */
export async function assertAppsOfOrg(database: Db, orgId: string, appRoles: readonly AppRoleInput[] | undefined) {
  if (!appRoles?.length) return;
  // The ids travel as one JSON parameter: D1 allows at most 100 bound parameters per statement.
  const ids = JSON.stringify([...new Set(appRoles.map((r) => r.appId))]);
  const found = await database
    .select({ id: apps.id })
    .from(apps)
    .where(and(eq(apps.orgId, orgId), inArray(apps.id, sql`(select value from json_each(${ids}))`)))
    .all();
  const known = new Set(found.map((a) => a.id));
  const issues = appRoles.flatMap(({ appId }, i) =>
    known.has(appId) ? [] : [{ field: `appRoles.${i}.appId`, message: "is not an app of this organization" }],
  );
  if (issues.length) throw invalidFields(issues);
}

/** D1's message when a write names a row that is gone (an app deleted while a key was being saved). */
export function isMissingAppError(err: unknown): boolean {
  return err instanceof Error && /FOREIGN KEY constraint failed/i.test(err.message);
}

/** `?force=true`: revoke or disable the organization's last live admin key anyway (otherwise 409). */
export const ForceQuery = z.object({
  force: z
    .enum(["true", "false"])
    .optional()
    .openapi({
      param: { name: "force", in: "query" },
      description: "`true` to act on the organization's last live admin key anyway (otherwise 409 `LAST_ADMIN_KEY`).",
      example: "false",
    }),
});

// ---------------------------------------------------------------------------------------------
// Lifecycle: not before, allowed networks, metadata
// ---------------------------------------------------------------------------------------------

export const NotBeforeField = Timestamp.nullable().openapi({
  description: "The key verifies from this time on (must be in the future and before `expiresAt`); NOT_YET_VALID before. null: at once.",
  example: "2026-12-01T09:00:00.000Z",
});

/**
 * The canonical ranges of a request's `allowedNetworks` (undefined when absent), or 400 naming each
 * bad entry.
 * @example networksFromInput(["10.0.0.0/8"]) // ["10.0.0.0/8"]
 */
export function networksFromInput(input: readonly string[] | undefined): string[] | undefined {
  if (input === undefined) return undefined;
  const result = normalizeNetworks(input);
  if (!result.ok) throw invalidFields(result.issues.map((i) => ({ field: `allowedNetworks.${i.index}`, message: i.message })));
  return result.networks;
}

/**
 * The time (ms) a request's `notBefore` asks for: undefined when absent, null for none; in the future
 * and before the key's expiry.
 */
export function notBeforeFromInput(input: string | null | undefined, expiresAt: number | null, now: number): number | null | undefined {
  if (input === undefined || input === null) return input;
  const at = Date.parse(input);
  if (!(at > now)) throw invalidFields([{ field: "notBefore", message: "must be in the future" }]);
  if (expiresAt !== null && at >= expiresAt) throw invalidFields([{ field: "notBefore", message: "must be before the key's expiry" }]);
  return at;
}

/** 400 when a refill is set on a key without credits: there would be no balance to refill. */
export function assertCreditsInput(credits: number | null | undefined, refill: unknown): void {
  if (refill && (credits === null || credits === undefined)) {
    throw invalidFields([{ field: "creditsRefill", message: "needs credits: set a balance to refill" }]);
  }
}

// ---------------------------------------------------------------------------------------------
// Expiration and policy
// ---------------------------------------------------------------------------------------------

export interface ExpirationEdit {
  expiresInDays?: 30 | 60 | 90 | 365;
  expiresAt?: string | null;
}

/**
 * The absolute expiry (ms) a request asks for: `undefined` when it says nothing, `null` for no
 * expiry. A preset counts from `now`; an explicit time must be in the future; not both.
 * @example expiryFromInput({ expiresInDays: 90 }, Date.now()) // now + 90 days
 */
export function expiryFromInput(input: ExpirationEdit, now: number): number | null | undefined {
  if (input.expiresInDays !== undefined && input.expiresAt !== undefined) {
    throw invalidFields([
      { field: "expiresInDays", message: "cannot be combined with expiresAt: give one or the other" },
      { field: "expiresAt", message: "cannot be combined with expiresInDays: give one or the other" },
    ]);
  }
  if (input.expiresInDays !== undefined) return resolveExpiry({ days: input.expiresInDays }, now);
  if (input.expiresAt === undefined || input.expiresAt === null) return input.expiresAt;
  const at = Date.parse(input.expiresAt);
  if (!(at > now)) throw invalidFields([{ field: "expiresAt", message: "must be in the future" }]);
  return at;
}

/**
 * 400 with `details.code` EXPIRATION_REQUIRED or LIFETIME_TOO_LONG when a key created at `createdAt`
 * and expiring at `expiresAt` would break the org's policy; the issue names the field the request
 * used (`input`), or `expiresAt` when it gave none.
 * @example assertPolicy(policy, { createdAt: now, expiresAt }, body)
 */
export function assertPolicy(
  policy: OrgPolicy,
  key: { createdAt: number; expiresAt: number | null; grants?: readonly Grant[]; allowedNetworks?: readonly string[] | null },
  input: ExpirationEdit,
) {
  const violation = policyViolation(policy, key);
  if (!violation) return;
  const field = violation.code === "NETWORKS_REQUIRED" ? "allowedNetworks" : input.expiresInDays !== undefined ? "expiresInDays" : "expiresAt";
  throw new ApiError("INVALID_REQUEST", violation.message, {
    code: violation.code,
    issues: [{ field, message: violation.message }],
  });
}

// ---------------------------------------------------------------------------------------------
// Escalation
// ---------------------------------------------------------------------------------------------

export { grantLabel };

/**
 * The authority's view of the calling key: who it is (for the audit log) and what it holds, which
 * the authority checks against the key as it is when the operation runs.
 */
export function actorOf(
  caller: Pick<VerifiedKey, "keyId" | "grants" | "expiresAt" | "allowedNetworks">,
  requestId: string,
  metering?: MeteringBound,
): Actor {
  return {
    actorKeyId: caller.keyId,
    requestId,
    grants: caller.grants,
    expiresAt: caller.expiresAt,
    allowedNetworks: caller.allowedNetworks ?? null,
    ...(metering ? { metering } : {}),
  };
}

/**
 * The calling key's metering as stored now (its balance, refill and own limits) with its org's default
 * limits: what it may not hand out less of (see src/domain/metering.ts). One D1 read.
 */
export async function meteringBoundOf(database: Db, caller: Pick<VerifiedKey, "keyId" | "grants">): Promise<MeteringBound> {
  const { row, policy } = await loadKeyRowAndPolicy(database, caller.keyId);
  // The caller verified a moment ago: a row gone since is a key revoked meanwhile, which hands out nothing.
  if (!row) throw new ApiError("FORBIDDEN", "The calling key no longer exists.");
  // `org:admin` is what changing the policy needs (PUT .../policy).
  return meteringBound(row, policy.rateLimits ?? null, allows(caller.grants, "org:admin"));
}

/**
 * 403 `METERING_BEYOND_CALLER` when a key metered as `key` would be metered less than the calling key:
 * credits and rate limits are access, never handed out (or taken off oneself) beyond one's own.
 * @example assertMeteringWithinCaller(await meteringBoundOf(database, caller), { credits: null, creditsRefill: null, rateLimits: null })
 */
export function assertMeteringWithinCaller(caller: MeteringBound, key: Metering): void {
  const issues = meteringShortfall(caller, key);
  if (!issues.length) return;
  throw new ApiError("FORBIDDEN", "This key is metered: it cannot give a key, or itself, fewer credits or looser rate limits than its own.", {
    reason: "METERING_BEYOND_CALLER",
    issues,
  });
}

/**
 * 403 when a key limited to `networks` (null or empty: anywhere) would be usable beyond the calling
 * key's own allowed networks: like expiry, where a key works is access, never handed out beyond one's own.
 */
export function assertNetworksWithinCaller(caller: Pick<VerifiedKey, "allowedNetworks">, networks: readonly string[] | null): void {
  if (networksWithin(networks, caller.allowedNetworks)) return;
  const own = (caller.allowedNetworks ?? []).join(", ");
  throw new ApiError("FORBIDDEN", `This key is limited to ${own}: it cannot give a key wider networks than its own.`, {
    reason: "NETWORKS_BEYOND_CALLER",
    issues: [{ field: "allowedNetworks", message: `must lie within ${own}, the calling key's allowed networks` }],
  });
}

/**
 * 403 when a key expiring at `expiresAt` would outlive `caller`: expiry is access, so a key expiring
 * in 24 h cannot create or edit a key that lives longer (or forever).
 * @example assertWithinCallerLifetime(caller, expiresAt, body)
 */
export function assertWithinCallerLifetime(caller: Pick<VerifiedKey, "expiresAt">, expiresAt: number | null, input: ExpirationEdit): void {
  if (!outlives(expiresAt, caller.expiresAt)) return;
  const field = input.expiresInDays !== undefined ? "expiresInDays" : "expiresAt";
  const until = new Date(caller.expiresAt!).toISOString();
  throw new ApiError("FORBIDDEN", `This key expires at ${until}: it cannot give a key a longer life than its own.`, {
    reason: "OUTLIVES_CALLER",
    issues: [{ field, message: `must be no later than ${until}, when the calling key expires` }],
  });
}

/**
 * 403 FORBIDDEN unless `caller` holds everything `access` grants (and `app:admin` on every app it
 * names a role on); `details.missing` lists what the caller lacks as `permission@app`.
 * @example assertCanGrant(c.var.caller, { kind: "scoped", scopes: ["project:deploy"] })
 */
export function assertCanGrant(caller: Pick<VerifiedKey, "grants">, access: KeyAccess, action = "grant"): void {
  const missing = missingGrants(caller.grants, grantsOf(access));
  if (missing.length === 0) return;
  throw new ApiError("FORBIDDEN", `This key cannot ${action} access beyond its own.`, {
    missing: missing.map(grantLabel),
  });
}

/**
 * 403 FORBIDDEN unless `caller` covers all of the access the stored key `row` carries: a caller may
 * only edit, regenerate, reveal or revoke keys no more powerful than itself.
 * @example assertCanManage(c.var.caller, row) // before the authority applies an edit
 */
export function assertCanManage(caller: Pick<VerifiedKey, "grants">, row: KeyRow): void {
  assertCanGrant(caller, accessOf(row), "manage a key with");
}
