/**
 * The permission catalog: configuration, in one place. Every kind of key (RBAC roles, scopes,
 * legacy modes) resolves to these permissions, and one evaluator (`permissions.ts`) decides.
 */

/** Every permission the gateway knows. App-level ones may be bound to a single app. */
export const PERMISSIONS = [
  "org:read", // see the organization and its apps
  "org:admin", // administer the organization: apps, key policy, audit log
  "apiKeyManagement", // create, list, edit, regenerate, reveal and revoke keys
  "app:read", // read an app
  "app:upload", // upload new bundles
  "app:publish", // publish-related app operations
  "app:manage", // manage the app's configuration and deployments
  "app:admin", // full access to the app, including granting roles on it
  "project:read-rc", // read project runtime configuration
  "project:deploy", // trigger or manage deployments
  // Verify the org's keys as an authenticated verifier (a bearer credential at `POST /v1/keys/verify`):
  // assert the caller's address, a use's cost and the strict mode for them. Org-wide only: no app role carries it.
  "keys:verify",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Scopes a scoped key may carry: a fixed catalog, each granting one permission org-wide. */
export const SCOPES = [
  "app:publish",
  "project:read-rc",
  "project:deploy",
  "app:read",
  "app:upload",
  "org:read",
  "apiKeyManagement",
  // A dedicated verifier key for a backend that verifies its own callers' keys: this scope and nothing else.
  "keys:verify",
] as const satisfies readonly Permission[];
export type Scope = (typeof SCOPES)[number];

export const ORG_ROLES = ["none", "member", "admin"] as const;
export type OrgRole = (typeof ORG_ROLES)[number];

export const APP_ROLES = ["reader", "uploader", "developer", "admin"] as const;
export type AppRole = (typeof APP_ROLES)[number];

export const LEGACY_MODES = ["read", "upload", "write", "all"] as const;
export type LegacyMode = (typeof LEGACY_MODES)[number];

/** Each app role contains the one before it. */
export const APP_ROLE_PERMISSIONS: Record<AppRole, readonly Permission[]> = {
  reader: ["app:read"],
  uploader: ["app:read", "app:upload"],
  developer: ["app:read", "app:upload", "app:publish", "app:manage", "project:read-rc", "project:deploy"],
  admin: ["app:read", "app:upload", "app:publish", "app:manage", "project:read-rc", "project:deploy", "app:admin"],
};

/** Org-wide permissions of each org role. An org admin also holds every app permission on every app. */
export const ORG_ROLE_PERMISSIONS: Record<OrgRole, readonly Permission[]> = {
  none: [],
  member: ["org:read"],
  admin: PERMISSIONS,
};

/**
 * Legacy modes, mapped onto the same permissions, org-wide. Each mode contains the one before it. `all`
 * holds every permission, `keys:verify` included, as an org admin does; `write` never administered
 * anything, so it does not verify for others either.
 */
export const LEGACY_MODE_PERMISSIONS: Record<LegacyMode, readonly Permission[]> = {
  read: ["org:read", "app:read"],
  upload: ["org:read", "app:read", "app:upload"],
  write: ["org:read", "app:read", "app:upload", "app:publish", "app:manage", "project:read-rc", "project:deploy"],
  all: PERMISSIONS,
};

/** Expiration presets offered by the API and the console, in days. */
export const EXPIRY_PRESETS_DAYS = [30, 60, 90, 365] as const;
