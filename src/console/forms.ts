import { EXPIRY_PRESETS_DAYS, ORG_ROLES, SCOPES, type AppRole, type LegacyMode, type OrgRole, type Permission, type Scope } from "../domain/catalog";
import { allows, grantsOf, missingGrants, type Grant, type KeyAccess } from "../domain/permissions";
import { LEAKED_KEY_ACTIONS, outlives, policyViolation, type OrgPolicy, type PolicyViolation } from "../domain/policy";

/**
 * Console forms ↔ API bodies, and API errors → messages next to form fields. The API stays the
 * one judge of every rule; this module only translates, so the console cannot drift from it.
 */

const DAY_MS = 86_400_000;

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

/** A form field that can carry a message; `form` holds messages that belong to no single field. */
export type FieldName =
  | "name"
  | "expiration"
  | "orgRole"
  | "appRoles"
  | "scopes"
  | "notBefore"
  | "allowedNetworks"
  | "metadata"
  | "policy"
  | "unusedKeyDays"
  | "url"
  | "eventTypes"
  | "description"
  | "rateLimits"
  | "credits"
  | "creditsRefill"
  | "form";

/**
 * Field name in the form → message. `networkLines` holds the API's message for each refused range, by its
 * index in the list sent (`allowedNetworks.N`), so the page can put each beside its own line.
 */
export type FieldErrors = Partial<Record<FieldName, string>> & { networkLines?: Record<number, string>; rateLimitRows?: Record<number, string> };

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

/**
 * The allowed-networks textarea's ranges, one a line, blank lines skipped, each with its line number (from 1),
 * so a refusal of the Nth range sent can be shown beside the line it came from.
 */
export function networkLines(text: string): { line: number; range: string }[] {
  return text.split(/\r?\n/).flatMap((raw, i) => (raw.trim() ? [{ line: i + 1, range: raw.trim() }] : []));
}

/**
 * `notBefore` from the datetime-local input. The console shows every time in UTC, so the input is read as
 * UTC too (its label says so): a server-rendered page does not know the browser's time zone.
 */
export function notBeforeOf(form: FormValues): string | null {
  const value = first(form, "notBefore").trim();
  if (value === "") return null;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) || Number.isNaN(Date.parse(`${value}Z`))) {
    throw new FormError({ notBefore: "Enter the start as a date and time (UTC), or leave it empty to start at once." });
  }
  return new Date(`${value}Z`).toISOString();
}

/** The value a datetime-local input shows for an ISO time (UTC, to the minute). */
export const localInputValue = (iso: string | null | undefined) => (iso ? iso.slice(0, 16) : "");

/**
 * The metadata textarea's JSON, or null when it is empty. Only the syntax is judged here: the API judges
 * the rest (an object, 1 KiB, depth, no prototype keys) and its message is shown beside the field.
 */
export function metadataOf(form: FormValues): unknown {
  const text = first(form, "metadata").trim();
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormError({ metadata: `Metadata is not valid JSON (${(err as Error).message}). Write an object such as {"customerId": "c_1"}, or leave it empty.` });
  }
}

/** The text the metadata textarea shows for a key's metadata. */
export const metadataText = (metadata: unknown) => (metadata === null || metadata === undefined ? "" : JSON.stringify(metadata, null, 2));

/** A rate limit window, as the API takes and gives it. */
export interface RateLimit {
  limit: number;
  periodSeconds: number;
}

/** The periods the row editor offers by name; any other is typed in seconds ("other"). */
export const RATE_PERIODS = [
  { seconds: 1, label: "second" },
  { seconds: 10, label: "10 s" },
  { seconds: 60, label: "minute" },
  { seconds: 3600, label: "hour" },
  { seconds: 86400, label: "day" },
] as const;

/** The rows the editor shows (the API allows at most three windows). */
export const RATE_LIMIT_ROWS = 3;

/** "10 s", "minute", "2 days": a period as the console names it. */
export function periodLabel(seconds: number): string {
  const named = RATE_PERIODS.find((p) => p.seconds === seconds);
  if (named) return named.label;
  for (const [unit, name] of [[86400, "days"], [3600, "h"], [60, "min"]] as const) {
    if (seconds % unit === 0) return `${seconds / unit} ${name}`;
  }
  return `${seconds} s`;
}

/** "100 per 10 s, 10,000 per day". */
export const limitsText = (limits: readonly RateLimit[]) =>
  limits.map((l) => `${l.limit.toLocaleString("en-US")} per ${periodLabel(l.periodSeconds)}`).join(", ");

/** The editor's values for some limits: one row each, blank rows up to the editor's three. */
export function rateLimitFormOf(limits: readonly RateLimit[] | null | undefined): FormValues {
  const rows = [...(limits ?? [])];
  const named = (s: number) => RATE_PERIODS.some((p) => p.seconds === s);
  const out: FormValues = {
    rlLimit: rows.map((l) => String(l.limit)),
    rlPeriod: rows.map((l) => (named(l.periodSeconds) ? String(l.periodSeconds) : "other")),
    rlSeconds: rows.map((l) => (named(l.periodSeconds) ? "" : String(l.periodSeconds))),
  };
  while (out.rlLimit!.length < RATE_LIMIT_ROWS) {
    out.rlLimit!.push("");
    out.rlPeriod!.push("60");
    out.rlSeconds!.push("");
  }
  return out;
}

const WHOLE = /^\d+$/;

/**
 * The rate limit rows filled in, each with its row number (from 1) so a refusal of the Nth limit sent is shown
 * beside the row it came from. A row with no limit is blank and skipped. Only the shape is judged here (whole
 * numbers); the API judges the rest.
 */
export function rateLimitRows(form: FormValues): { row: number; limit: RateLimit }[] {
  const limits = form.rlLimit ?? [];
  return limits.flatMap((raw, i) => {
    const text = raw.trim();
    if (text === "") return [];
    const period = form.rlPeriod?.[i] ?? "";
    const seconds = period === "other" ? (form.rlSeconds?.[i] ?? "").trim() : period;
    if (!WHOLE.test(text)) throw new FormError({ rateLimits: `Limit ${i + 1}: enter the number of requests as a whole number, or leave the row empty.` });
    if (!WHOLE.test(seconds)) throw new FormError({ rateLimits: `Limit ${i + 1}: enter the period as a whole number of seconds.` });
    return [{ row: i + 1, limit: { limit: Number(text), periodSeconds: Number(seconds) } }];
  });
}

/** The credits fields: the balance (null: unmetered) and the refill (null: none). */
export function creditsOf(form: FormValues): { credits: number | null; creditsRefill: { amount: number; interval: "day" | "month" } | null } {
  const balance = first(form, "credits").trim();
  const amount = first(form, "refillAmount").trim();
  if (balance !== "" && !WHOLE.test(balance)) throw new FormError({ credits: "Enter the credits as a whole number, or leave it empty for an unmetered key." });
  if (amount !== "" && !WHOLE.test(amount)) throw new FormError({ creditsRefill: "Enter the refill as a whole number, or leave it empty for no refill." });
  const interval = first(form, "refillInterval") === "day" ? "day" : "month";
  return { credits: balance === "" ? null : Number(balance), creditsRefill: amount === "" ? null : { amount: Number(amount), interval } };
}

/** `POST /v1/orgs/{orgId}/keys` body from the create dialog; the optional fields only when filled in. */
export function createKeyBody(form: FormValues) {
  const kind = first(form, "kind") === "scoped" ? "scoped" : "rbac";
  const notBefore = notBeforeOf(form);
  const networks = networkLines(first(form, "allowedNetworks")).map((l) => l.range);
  const metadata = metadataOf(form);
  const limits = rateLimitRows(form).map((r) => r.limit);
  const { credits, creditsRefill } = creditsOf(form);
  return {
    kind,
    name: first(form, "name"),
    secure: first(form, "secure") === "on",
    ...expiryFields(form, { keepable: false }),
    ...accessFields(kind, form),
    ...(notBefore !== null ? { notBefore } : {}),
    ...(networks.length ? { allowedNetworks: networks } : {}),
    ...(metadata !== null ? { metadata } : {}),
    ...(limits.length ? { rateLimits: limits } : {}),
    ...(credits !== null ? { credits } : {}),
    // Sent even without credits, so the API's refusal ("needs credits") is shown beside the refill.
    ...(creditsRefill !== null ? { creditsRefill } : {}),
  };
}

/** The key as the edit page found it: what an unchanged field is compared with. */
export interface EditedKey {
  kind: string;
  status: string;
  notBefore: string | null;
  allowedNetworks: readonly string[];
  metadata: unknown;
  rateLimits?: readonly RateLimit[];
  credits?: { remaining: number; refill: { amount: number; interval: "day" | "month" } | null } | null;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * `PATCH /v1/orgs/{orgId}/keys/{keyId}` body from the edit page. Start, networks and metadata are sent only
 * when changed: an unchanged past start would be refused as "not in the future", and a key manager limited to
 * networks may rename a key whose networks it could not set itself.
 */
export function updateKeyBody(current: EditedKey, form: FormValues) {
  const body: Record<string, unknown> = { name: first(form, "name"), ...expiryFields(form, { keepable: true }), ...accessFields(current.kind, form) };
  const notBefore = notBeforeOf(form);
  // The page shows a start only while it is ahead (a pending key): an empty field is then "no change".
  const shownStart = current.status === "pending" ? current.notBefore : null;
  if (localInputValue(notBefore) !== localInputValue(shownStart)) body.notBefore = notBefore;
  const networks = networkLines(first(form, "allowedNetworks")).map((l) => l.range);
  if (!sameJson(networks, current.allowedNetworks)) body.allowedNetworks = networks;
  const metadata = metadataOf(form);
  if (!sameJson(metadata, current.metadata)) body.metadata = metadata;
  // A form without the metering fields (an older page) changes none of them.
  if (form.rlLimit !== undefined) {
    const limits = rateLimitRows(form).map((r) => r.limit);
    if (!sameJson(limits, current.rateLimits ?? [])) body.rateLimits = limits;
  }
  if (form.credits !== undefined) {
    const { credits, creditsRefill } = creditsOf(form);
    // The balance is compared with what the page showed (`creditsWas`), not with the key now: uses spend it
    // meanwhile, and sending it back unchanged would undo them.
    if ((first(form, "creditsWas").trim() || null) !== (credits === null ? null : String(credits))) body.credits = credits;
    // An unmetered key has nothing to refill: clearing the balance clears its refill too.
    const refill = credits === null ? null : creditsRefill;
    if (!sameJson(refill, current.credits?.refill ?? null)) body.creditsRefill = refill;
  }
  return body;
}

/**
 * The rules the policy page's form sets. The unused-key rules and the leak action only when the form carried
 * them: the page's route sends every other rule back as it stands, since PUT replaces the whole policy.
 */
export function policyBody(form: FormValues): Partial<OrgPolicy> {
  const cap = first(form, "maxLifetimeDays").trim();
  if (cap !== "" && !/^\d+$/.test(cap)) throw new FormError({ policy: "Enter a whole number of days, or leave it empty for no cap." });
  const body: Partial<OrgPolicy> = {
    requireExpiration: first(form, "requireExpiration") === "on",
    maxLifetimeDays: cap === "" ? null : Number(cap),
    requireNetworksForAdmin: first(form, "requireNetworksForAdmin") === "on",
  };
  const leak = first(form, "leakedKeyAction");
  if ((LEAKED_KEY_ACTIONS as readonly string[]).includes(leak)) body.leakedKeyAction = leak as OrgPolicy["leakedKeyAction"];
  // A number input is always submitted, empty or not: its presence says the form showed the unused-key rules.
  if (form.unusedKeyDays !== undefined) {
    const days = first(form, "unusedKeyDays").trim();
    if (days !== "" && !/^\d+$/.test(days)) throw new FormError({ unusedKeyDays: "Enter a whole number of days, or leave it empty to never flag unused keys." });
    body.unusedKeyDays = days === "" ? null : Number(days);
    body.expireUnusedKeys = first(form, "expireUnusedKeys") === "on";
  }
  if (form.rlLimit !== undefined) {
    const limits = rateLimitRows(form).map((r) => r.limit);
    body.rateLimits = limits.length ? limits : null;
  }
  return body;
}

const FIELD_OF: [RegExp, FieldName][] = [
  [/^name$/, "name"],
  [/^notBefore$/, "notBefore"],
  [/^allowedNetworks/, "allowedNetworks"],
  [/^metadata/, "metadata"],
  [/^url$/, "url"],
  [/^eventTypes/, "eventTypes"],
  [/^description$/, "description"],
  [/^rateLimits/, "rateLimits"],
  [/^credits$/, "credits"],
  [/^creditsRefill/, "creditsRefill"],
  [/^expires(InDays|At)$/, "expiration"],
  [/^orgRole$/, "orgRole"],
  [/^appRoles/, "appRoles"],
  [/^scopes/, "scopes"],
  [/^(requireExpiration|maxLifetimeDays)$/, "policy"],
  [/^(unusedKeyDays|expireUnusedKeys)$/, "unusedKeyDays"],
];

const LABELS: Record<string, string> = {
  name: "Name",
  scopes: "Scopes",
  expiresInDays: "Expiration",
  expiresAt: "Expiration",
  orgRole: "Organization role",
  appRoles: "App roles",
  notBefore: "The start",
  allowedNetworks: "Allowed networks",
  metadata: "Metadata",
  url: "The URL",
  eventTypes: "Event types",
  description: "The description",
  rateLimits: "Rate limits",
  credits: "Credits",
  creditsRefill: "The refill",
};

/** The API's error envelope as messages beside the fields they concern. */
export function fieldErrors(error: { code: string; message: string; details?: unknown }): FieldErrors {
  const details = (error.details ?? {}) as { issues?: { field: string; message: string }[]; missing?: string[] };
  if (error.code === "FORBIDDEN" && details.missing) {
    return { form: `Your key cannot grant access it does not hold itself (missing: ${details.missing.join(", ")}).` };
  }
  const errors: FieldErrors = {};
  for (const issue of details.issues ?? []) {
    // One refused range (`allowedNetworks.3`): its message goes beside its own line.
    const range = /^allowedNetworks\.(\d+)$/.exec(issue.field);
    if (range) {
      (errors.networkLines ??= {})[Number(range[1])] = issue.message;
      errors.allowedNetworks ??= "Some ranges are not valid CIDR ranges: see each line below.";
      continue;
    }
    // One refused limit (`rateLimits.1.limit`): beside its own row, by its index in the list sent.
    const limit = /^rateLimits\.(\d+)(?:\.(limit|periodSeconds))?$/.exec(issue.field);
    if (limit) {
      const what = limit[2] === "periodSeconds" ? "The period" : limit[2] === "limit" ? "The limit" : "This limit";
      (errors.rateLimitRows ??= {})[Number(limit[1])] = /^[A-Z]/.test(issue.message) ? issue.message : `${what} ${issue.message}.`;
      errors.rateLimits ??= "Some limits were refused: see each row.";
      continue;
    }
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

/** A key as the API lists it: the fields the console judges it by. */
export interface ListedKey {
  kind: "rbac" | "scoped" | "legacy";
  orgRole: OrgRole | null;
  appRoles: { appId: string; role: AppRole }[];
  scopes: Scope[] | null;
  mode: LegacyMode | null;
  status: string;
  createdAt: string;
  expiresAt: string | null;
  allowedNetworks?: readonly string[];
}

/** The signed-in key, as far as deciding what it may do goes. */
export interface Signer {
  grants: readonly Grant[];
  /** Epoch ms; null when it never expires. */
  expiresAt: number | null;
}

/** A listed key in the evaluator's shape (what `accessOf` gives for a stored row). */
export function accessOfKey(k: ListedKey): KeyAccess {
  switch (k.kind) {
    case "rbac":
      return {
        kind: "rbac",
        orgRole: k.orgRole ?? "none",
        appRoles: k.orgRole === "admin" ? {} : Object.fromEntries(k.appRoles.map((r) => [r.appId, r.role])),
      };
    case "scoped":
      return { kind: "scoped", scopes: (k.scopes ?? []) as Permission[] };
    case "legacy":
      return { kind: "legacy", mode: k.mode ?? "read" };
  }
}

const msOf = (iso: string | null) => (iso === null ? null : Date.parse(iso));

/**
 * Why the signer may not act on `k`, the authority's own two rules asked ahead of time so the page
 * disables what the API would refuse: `manage` (edit, regenerate, reveal, delete) when `k` holds access
 * the signer lacks; `secret` (regenerate, reveal) when `k` would outlive the signer. The API still judges.
 */
export function refusalsFor(signer: Signer, k: ListedKey, appNames: ReadonlyMap<string, string> = new Map()): { manage?: string; secret?: string } {
  // The authority's rule (missingToManage), with each missing grant named as the page names apps.
  const missing = missingGrants(signer.grants, grantsOf(accessOfKey(k))).map((g) =>
    g.app === null ? g.permission : `${g.permission} on ${appNames.get(g.app) ?? `app ${g.app}`}`,
  );
  if (missing.length) {
    const shown = missing.slice(0, 3).join(", ") + (missing.length > 3 ? ` and ${missing.length - 3} more` : "");
    return { manage: `Your key cannot change this key: it has access yours lacks (${shown}).` };
  }
  if (outlives(msOf(k.expiresAt), signer.expiresAt)) {
    const until = new Date(signer.expiresAt!).toISOString().slice(0, 10);
    return { secret: `Your key expires on ${until}, so it cannot hand out a secret for this longer-lived key.` };
  }
  return {};
}

/** How `k` breaks the org policy, or null; expired keys are past judging. */
export function keyPolicyViolation(policy: OrgPolicy, k: ListedKey): PolicyViolation | null {
  if (k.status === "expired") return null;
  return policyViolation(policy, {
    createdAt: Date.parse(k.createdAt),
    expiresAt: msOf(k.expiresAt),
    grants: grantsOf(accessOfKey(k)),
    allowedNetworks: k.allowedNetworks ?? [],
  });
}

/**
 * The expiration choices a signer may give a new key: presets within the policy's cap and the signer's
 * own life, and "none" only when neither the policy nor the signer's expiry rules it out.
 */
export function offeredExpirations(policy: OrgPolicy, signerExpiresAt: number | null, now = Date.now()) {
  const presets = EXPIRY_PRESETS_DAYS.filter(
    (d) => (policy.maxLifetimeDays === null || d <= policy.maxLifetimeDays) && !outlives(now + d * DAY_MS, signerExpiresAt),
  );
  return { presets, none: !policy.requireExpiration && signerExpiresAt === null };
}

/**
 * The expiration a new key starts with: none when allowed, else the shortest preset allowed, else the
 * last whole day (UTC, as the date field means it) that fits the policy's cap and the signer's own life.
 */
export function defaultExpiration(policy: OrgPolicy, signerExpiresAt: number | null, now = Date.now()): FormValues {
  const offered = offeredExpirations(policy, signerExpiresAt, now);
  if (offered.none) return { expiration: ["none"] };
  if (offered.presets[0] !== undefined) return { expiration: [String(offered.presets[0])] };
  const limit = Math.min(signerExpiresAt ?? Infinity, policy.maxLifetimeDays === null ? Infinity : now + policy.maxLifetimeDays * DAY_MS);
  // A date means "through the end of that day": the last day whose end is still within the limit.
  const lastDay = Math.floor((limit + 1) / DAY_MS) * DAY_MS - DAY_MS;
  return { expiration: ["date"], expiresOn: lastDay > now - DAY_MS ? [new Date(lastDay).toISOString().slice(0, 10)] : [] };
}

/**
 * What the create dialog starts with: a form the API accepts as it is, so a new org's first key needs
 * only a name, with the least access that is still some: a member of the org (read only). A signer
 * that cannot grant Member (a scoped key manager) starts from no role and picks the access itself.
 */
export function defaultCreateForm(grantable: { orgRoles: readonly OrgRole[] }, expiration: FormValues): FormValues {
  return { kind: ["rbac"], secure: ["on"], ...expiration, orgRole: [grantable.orgRoles.includes("member") ? "member" : "none"], appRole: ["reader"] };
}

/** `POST /v1/orgs/{orgId}/webhooks` body from the register dialog; "every event" alone when it is ticked. */
export function webhookBody(form: FormValues) {
  const types = form.eventTypes ?? [];
  const description = first(form, "description").trim();
  return { url: first(form, "url").trim(), eventTypes: types.includes("*") ? ["*"] : types, description: description || null };
}
