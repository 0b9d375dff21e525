import { parsePublicKeys, type ReporterKey } from "../../domain/secret-scanning";
import { ApiError } from "../../errors";

/**
 * The public keys a secret scanning reporter signs with. `SECRET_SCANNING_PUBLIC_KEYS` (GitHub's JSON
 * format, set locally and in tests) wins; otherwise they are fetched from `SECRET_SCANNING_KEYS_URL`
 * (GitHub's published list) and kept in the isolate for an hour, so a report costs no fetch. A report
 * signed with a key id not in the kept list refetches once (GitHub rotates keys), at most once a minute.
 */

const KEEP_MS = 3_600_000;
const REFETCH_MS = 60_000;
let fetched: { keys: ReporterKey[]; at: number } | null = null;

type Config = Partial<Pick<Env, "SECRET_SCANNING_PUBLIC_KEYS" | "SECRET_SCANNING_KEYS_URL">>;

async function fetchKeys(url: string): Promise<ReporterKey[]> {
  let keys: ReporterKey[] | null = null;
  try {
    const res = await fetch(url, { headers: { accept: "application/json", "user-agent": "keygate" } });
    if (res.ok) keys = parsePublicKeys(await res.json());
  } catch {
    keys = null;
  }
  // No keys, no verification: the report is refused (503), never accepted unchecked.
  if (!keys) {
    throw new ApiError("SERVICE_UNAVAILABLE", "The reporter's public keys could not be loaded; nothing was done. Retry shortly.", undefined, {
      "Retry-After": "60",
    });
  }
  fetched = { keys, at: Date.now() };
  return keys;
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
  const now = Date.now();
  const kept = fetched && now - fetched.at < KEEP_MS ? fetched.keys : await fetchKeys(url);
  const found = kept.find((k) => k.keyIdentifier === keyIdentifier);
  if (found || !fetched || now - fetched.at < REFETCH_MS) return found;
  return (await fetchKeys(url)).find((k) => k.keyIdentifier === keyIdentifier);
}
