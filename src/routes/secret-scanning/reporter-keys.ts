import { parsePublicKeys, type ReporterKey } from "../../domain/secret-scanning";
import { ApiError } from "../../errors";

/**
 * The public keys a secret scanning reporter signs with. `SECRET_SCANNING_PUBLIC_KEYS` (GitHub's JSON
 * format, set locally and in tests) wins; otherwise they are fetched from `SECRET_SCANNING_KEYS_URL`
 * (GitHub's published list) and kept in the isolate for an hour, so a report costs no fetch. A report
 * signed with a key id not in the kept list refetches (GitHub rotates keys).
 *
 * The list is fetched before any signature can be checked, so whoever sends a report with made-up
 * headers decides when a fetch would happen. Hence: at most one fetch a minute per isolate, whatever
 * asks (a missing list, an unknown key id, a failed fetch alike), one at a time, with concurrent
 * requests sharing it; and a failure is remembered for that minute (503 with no fetch), not retried
 * by the next request.
 */

const KEEP_MS = 3_600_000;
/** At most one fetch of a list per isolate in this time, successful or not. */
const REFETCH_MS = 60_000;
/** Lists kept (one per configured URL; a deployment has one): bounds memory whatever the configuration. */
const MAX_LISTS = 4;

interface KeyList {
  keys: ReporterKey[] | null;
  fetchedAt: number;
  /** When the last fetch began (successful or not). */
  triedAt: number;
  pending?: Promise<void>;
}
const lists = new Map<string, KeyList>();

type Config = Partial<Pick<Env, "SECRET_SCANNING_PUBLIC_KEYS" | "SECRET_SCANNING_KEYS_URL">>;

/** Fetches the list once (requests that ask meanwhile share this fetch); a failure leaves the list as it was. */
function refresh(url: string, list: KeyList): Promise<void> {
  list.pending ??= (async () => {
    list.triedAt = Date.now();
    try {
      const res = await fetch(url, { headers: { accept: "application/json", "user-agent": "keygate" } });
      const keys = res.ok ? parsePublicKeys(await res.json()) : null;
      if (keys) {
        list.keys = keys;
        list.fetchedAt = Date.now();
      }
    } catch {
      // Remembered through `triedAt`: no request fetches again before REFETCH_MS.
    }
  })().finally(() => {
    list.pending = undefined;
  });
  return list.pending;
}

function listFor(url: string): KeyList {
  let list = lists.get(url);
  if (!list) {
    if (lists.size >= MAX_LISTS) lists.clear();
    list = { keys: null, fetchedAt: 0, triedAt: -Infinity };
    lists.set(url, list);
  }
  return list;
}

/** The reporter's key named `keyIdentifier`, or undefined when there is none. */
export async function reporterKey(env: Config, keyIdentifier: string): Promise<ReporterKey | undefined> {
  if (env.SECRET_SCANNING_PUBLIC_KEYS) {
    let json: unknown;
    try {
      json = JSON.parse(env.SECRET_SCANNING_PUBLIC_KEYS);
    } catch {
      json = null;
    }
    const keys = parsePublicKeys(json);
    if (!keys) throw new ApiError("MISCONFIGURED", "SECRET_SCANNING_PUBLIC_KEYS is not a public key list.");
    return keys.find((k) => k.keyIdentifier === keyIdentifier);
  }
  const url = env.SECRET_SCANNING_KEYS_URL;
  if (!url) throw new ApiError("MISCONFIGURED", "Secret scanning is not configured: set SECRET_SCANNING_KEYS_URL or SECRET_SCANNING_PUBLIC_KEYS.");
  const list = listFor(url);
  const live = () => list.keys !== null && Date.now() - list.fetchedAt < KEEP_MS;
  const mayFetch = () => list.pending !== undefined || Date.now() - list.triedAt >= REFETCH_MS;
  if (!live() && mayFetch()) await refresh(url, list);
  // No keys, no verification: the report is refused (503), never accepted unchecked.
  if (!live()) {
    throw new ApiError("SERVICE_UNAVAILABLE", "The reporter's public keys could not be loaded; nothing was done. Retry shortly.", undefined, {
      "Retry-After": String(Math.max(1, Math.ceil((list.triedAt + REFETCH_MS - Date.now()) / 1000))),
    });
  }
  const found = list.keys!.find((k) => k.keyIdentifier === keyIdentifier);
  if (found || !mayFetch()) return found;
  await refresh(url, list);
  return live() ? list.keys!.find((k) => k.keyIdentifier === keyIdentifier) : undefined;
}
