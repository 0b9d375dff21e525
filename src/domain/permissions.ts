import {
  APP_ROLE_PERMISSIONS,
  LEGACY_MODE_PERMISSIONS,
  ORG_ROLE_PERMISSIONS,
  type AppRole,
  type LegacyMode,
  type OrgRole,
  type Permission,
} from "./catalog";

/**
 * The one permission evaluator for all three kinds of key.
 *
 * A key resolves to grants: a permission, either org-wide (`app: null`) or bound to one app.
 */
export interface Grant {
  permission: Permission;
  app: string | null;
}

/** The access a key carries, as stored: exactly one of the three shapes is meaningful. */
export type KeyAccess =
  | { kind: "rbac"; orgRole: OrgRole; appRoles: Record<string, AppRole> }
  | { kind: "scoped"; scopes: Permission[] }
  | { kind: "legacy"; mode: LegacyMode };

/**
 * Resolves a key's access to its grants.
 * @example grantsOf({ kind: "scoped", scopes: ["app:publish"] }) // [{ permission: "app:publish", app: null }]
 */
export function grantsOf(access: KeyAccess): Grant[] {
  switch (access.kind) {
    case "scoped":
      return access.scopes.map((permission) => ({ permission, app: null }));
    case "legacy":
      return LEGACY_MODE_PERMISSIONS[access.mode].map((permission) => ({ permission, app: null }));
    case "rbac": {
      const grants: Grant[] = ORG_ROLE_PERMISSIONS[access.orgRole].map((permission) => ({ permission, app: null }));
      if (access.orgRole !== "admin") {
        for (const [app, role] of Object.entries(access.appRoles)) {
          for (const permission of APP_ROLE_PERMISSIONS[role]) grants.push({ permission, app });
        }
      }
      return grants;
    }
  }
}

/**
 * Whether `grants` allow `permission`, on `app` when given. Without an app, only an org-wide
 * grant allows it: a key with a role on one app may not act on "any" app.
 *
 * An org-wide grant covers the apps *of the key's organization* only: pass `appOfKeyOrg: false` when
 * `app` is another organization's or does not exist, and only a grant bound to that very app counts
 * (which a key never holds on a foreign app). Callers that have not checked the app's org must pass
 * what they know; the verifier looks it up ({@link needsAppOrg} says when it must).
 * @example allows(grantsOf(access), "app:upload", "app_123", appOrg === key.orgId)
 */
export function allows(grants: readonly Grant[], permission: Permission, app?: string | null, appOfKeyOrg = true): boolean {
  return grants.some(
    (g) => g.permission === permission && (g.app === null ? app == null || appOfKeyOrg : app != null && g.app === app),
  );
}

/**
 * Whether deciding `permission` on `app` depends on the app's organization: only when no grant bound
 * to the app allows it and an org-wide one would. Otherwise the answer is known without a lookup.
 */
export function needsAppOrg(grants: readonly Grant[], permission: Permission, app: string | null | undefined): boolean {
  return app != null && !allows(grants, permission, app, false) && allows(grants, permission, app, true);
}

/**
 * Whether a caller holding `callerGrants` may hand out `requested` grants: every requested grant
 * must be allowed to the caller, and a role on an app needs the right to administer that app.
 * Returns the grants the caller lacks (empty when allowed), so errors can say what is missing.
 */
export function missingGrants(callerGrants: readonly Grant[], requested: readonly Grant[]): Grant[] {
  const missing: Grant[] = [];
  const seen = new Set<string>();
  const need = (g: Grant) => {
    const id = `${g.permission}@${g.app ?? "*"}`;
    if (!seen.has(id) && !allows(callerGrants, g.permission, g.app)) missing.push(g);
    seen.add(id);
  };
  for (const g of requested) {
    need(g);
    if (g.app !== null) need({ permission: "app:admin", app: g.app });
  }
  return missing;
}

/** A grant as errors and audit entries show it: `permission@appId`, or `permission@*` when org-wide. */
export const grantLabel = (g: Grant) => `${g.permission}@${g.app ?? "*"}`;

/**
 * What a caller holding `callerGrants` lacks to manage (edit, regenerate, reveal, revoke) a key with
 * `access`: a caller may only touch keys no more powerful than itself. Empty when allowed.
 */
export function missingToManage(callerGrants: readonly Grant[], access: KeyAccess): string[] {
  return missingGrants(callerGrants, grantsOf(access)).map(grantLabel);
}

/** Whether the key has no access at all (refused at creation and at edit). */
export function hasNoAccess(access: KeyAccess): boolean {
  return grantsOf(access).length === 0;
}
