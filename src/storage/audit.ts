import { grantLabel, grantsOf } from "../domain/permissions";
import { accessOf, type KeyRow } from "./key-record";
import type { auditLog } from "./schema";

/**
 * Audit entries: what the audit log records of each change, written in the same D1 batch as the
 * change. Details are facts about access (who was given what, before and after), never key material.
 */

/** Who asked for a change, for the audit entry written in the same D1 batch as the change. */
export interface AuditContext {
  actorKeyId: string | null;
  requestId: string;
}

/** A time in ms as the API and the audit log show it (ISO 8601), null kept. */
export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The row of an audit entry. */
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
 * The access a new key is given, as the audit log records it at creation: its kind, roles, scopes or
 * mode, every grant they resolve to (`permission@app`), and its expiry.
 */
export function accessDetails(row: KeyRow) {
  return {
    name: row.name,
    kind: row.kind,
    secure: row.secure,
    grants: grantsOf(accessOf(row)).map(grantLabel),
    ...(row.kind === "rbac" ? { orgRole: row.orgRole, appRoles: row.appRoles } : row.kind === "scoped" ? { scopes: row.scopes } : { mode: row.mode }),
    expiresAt: iso(row.expiresAt),
    ...(row.notBefore !== null ? { notBefore: iso(row.notBefore) } : {}),
    ...(row.allowedNetworks?.length ? { allowedNetworks: row.allowedNetworks } : {}),
    ...(row.rateLimits?.length ? { rateLimits: row.rateLimits } : {}),
    ...(row.credits !== null ? { credits: row.credits, creditsRefill: row.creditsRefill } : {}),
  };
}

/** The before/after of every field an edit changed, as the audit log records it (never a secret). */
export function changesOf(before: KeyRow, after: KeyRow): Record<string, { before: unknown; after: unknown }> {
  const view = (row: KeyRow) => ({
    name: row.name,
    orgRole: row.orgRole,
    appRoles: row.appRoles,
    scopes: row.scopes,
    expiresAt: iso(row.expiresAt),
    notBefore: iso(row.notBefore),
    allowedNetworks: row.allowedNetworks ?? [],
    rateLimits: row.rateLimits ?? [],
    credits: row.credits,
    creditsRefill: row.creditsRefill,
    metadata: row.metadata,
  });
  const a = view(before);
  const b = view(after);
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const field of Object.keys(a) as (keyof typeof a)[]) {
    if (JSON.stringify(a[field]) !== JSON.stringify(b[field])) changes[field] = { before: a[field], after: b[field] };
  }
  return changes;
}

