import { EXPIRY_PRESETS_DAYS, ORG_ROLES, SCOPES, type OrgRole, type Scope } from "../domain/catalog";
import { allows, missingGrants, grantsOf, type Grant } from "../domain/permissions";

/**
 * Console forms ↔ API bodies, and API errors → messages next to form fields. The API stays the
 * one judge of every rule; this module only translates, so the console cannot drift from it.
 */

/** A submitted form: each field's values in order (checkboxes and app rows repeat). */
export type FormValues = Record<string, string[]>;

export function formValues(body: Record<string, string | File | (string | File)[]>): FormValues {
  const out: FormValues = {};
  for (const [name, value] of Object.entries(body)) {
    out[name] = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === "string");
  }
  return out;
}

export const first = (form: FormValues, name: string) => form[name]?.[0] ?? "";

/** Field name in the form → message. `form` holds messages that belong to no single field. */
export type FieldErrors = Partial<Record<"name" | "expiration" | "orgRole" | "appRoles" | "scopes" | "policy" | "form", string>>;

export class FormError extends Error {
  constructor(readonly errors: FieldErrors) {
    super("invalid form");
  }
}

/** The expiry fields of an API body from the form's expiration select and date input. */
export function expiryFields(form: FormValues, { keepable }: { keepable: boolean }): { expiresInDays?: number; expiresAt?: string | null } {
  const choice = first(form, "expiration") || (keepable ? "keep" : "none");
  if (choice === "keep") return {};
  if (choice === "none") return keepable ? { expiresAt: null } : {};
  if (choice === "date") {
    const date = first(form, "expiresOn");
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new FormError({ expiration: "Pick the date the key stops working." });
    // The key works through the whole day it names, in UTC.
    return { expiresAt: `${date}T23:59:59.999Z` };
  }
  const days = Number(choice);
  if (!(EXPIRY_PRESETS_DAYS as readonly number[]).includes(days)) throw new FormError({ expiration: "Choose an expiration." });
  return { expiresInDays: days };
}

/** App role rows: pairs of `appId` and `appRole`, blank rows skipped. */
export function appRoleRows(form: FormValues) {
  const ids = form.appId ?? [];
  const roles = form.appRole ?? [];
  return ids.flatMap((appId, i) => (appId ? [{ appId, role: roles[i] ?? "" }] : []));
}

/** The access fields of an RBAC or scoped key from the form. */
export function accessFields(kind: string, form: FormValues) {
  if (kind === "scoped") return { scopes: form.scopes ?? [] };
  const orgRole = first(form, "orgRole") || "none";
  return { orgRole, appRoles: orgRole === "admin" ? [] : appRoleRows(form) };
}

/** `POST /v1/orgs/{orgId}/keys` body from the create dialog. */
export function createKeyBody(form: FormValues) {
  const kind = first(form, "kind") === "scoped" ? "scoped" : "rbac";
  return {
    kind,
    name: first(form, "name"),
    secure: first(form, "secure") === "on",
    ...expiryFields(form, { keepable: false }),
    ...accessFields(kind, form),
  };
}

/** `PATCH /v1/orgs/{orgId}/keys/{keyId}` body from the edit page. */
export function updateKeyBody(kind: string, form: FormValues) {
  return { name: first(form, "name"), ...expiryFields(form, { keepable: true }), ...accessFields(kind, form) };
}

/** `PUT /v1/orgs/{orgId}/policy` body from the policy page. */
export function policyBody(form: FormValues) {
  const cap = first(form, "maxLifetimeDays").trim();
  if (cap !== "" && !/^\d+$/.test(cap)) throw new FormError({ policy: "Enter a whole number of days, or leave it empty for no cap." });
  return { requireExpiration: first(form, "requireExpiration") === "on", maxLifetimeDays: cap === "" ? null : Number(cap) };
}

const FIELD_OF: [RegExp, keyof FieldErrors][] = [
  [/^name$/, "name"],
  [/^expires(InDays|At)$/, "expiration"],
  [/^orgRole$/, "orgRole"],
  [/^appRoles/, "appRoles"],
  [/^scopes/, "scopes"],
  [/^(requireExpiration|maxLifetimeDays)$/, "policy"],
];

const LABELS: Record<string, string> = { name: "Name", scopes: "Scopes", expiresInDays: "Expiration", expiresAt: "Expiration", orgRole: "Organization role", appRoles: "App roles" };

/** The API's error envelope as messages beside the fields they concern. */
export function fieldErrors(error: { code: string; message: string; details?: unknown }): FieldErrors {
  const details = (error.details ?? {}) as { issues?: { field: string; message: string }[]; missing?: string[] };
  if (error.code === "FORBIDDEN" && details.missing) {
    return { form: `Your key cannot grant access it does not hold itself (missing: ${details.missing.join(", ")}).` };
  }
  const errors: FieldErrors = {};
  for (const issue of details.issues ?? []) {
    const field = FIELD_OF.find(([re]) => re.test(issue.field))?.[1] ?? "form";
    const label = LABELS[issue.field.split(".")[0] ?? ""] ?? "";
    const message = /^[A-Z]/.test(issue.message) ? issue.message : `${label || "This"} ${issue.message}.`;
    errors[field] ??= message;
  }
  if (Object.keys(errors).length === 0) errors.form = error.message;
  return errors;
}

/** Org roles a caller may hand out: those whose permissions it holds itself. */
export function grantableOrgRoles(callerGrants: readonly Grant[]): OrgRole[] {
  return ORG_ROLES.filter((orgRole) => missingGrants(callerGrants, grantsOf({ kind: "rbac", orgRole, appRoles: {} })).length === 0);
}

/** Scopes a caller may hand out: those it holds org-wide. */
export function grantableScopes(callerGrants: readonly Grant[]): Set<Scope> {
  return new Set(SCOPES.filter((scope) => allows(callerGrants, scope)));
}
