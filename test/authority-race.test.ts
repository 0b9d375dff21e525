import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../src/domain/crypto";
import { authorityFor, KeyAuthority } from "../src/durable-objects/key-authority";
import { db } from "../src/storage/db";
import { keyRecordName } from "../src/storage/key-record";
import { createKey } from "../src/storage/keys";
import { verifyKey } from "../src/verification/verify-key";
import { count, createOrg, prng, sleep, trials } from "./helpers";
import { authoritySettled } from "./key-fixtures";

let org: Awaited<ReturnType<typeof createOrg>>;
beforeAll(async () => {
  org = await createOrg("Race Co");
});

const audit = { actorKeyId: null, requestId: "race-test" };
const actor = { ...audit, grants: null, expiresAt: null };

/** A new scoped key straight through the storage layer (the routes are tested elsewhere). */
async function newKey(name = "raced") {
  return createKey(db(env.DB), env, {
    orgId: org.orgId,
    name,
    secure: true,
    expiresAt: null,
    access: { kind: "scoped", scopes: ["app:read", "app:upload"] },
    createdBy: null,
  }, audit);
}

/** A gate the test opens by hand: the authority's fill waits on it between its D1 read and KV write. */
function gate() {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const arrived = new Promise<void>((r) => (reached = r));
  return { open, arrived, pause: () => (reached(), opened) };
}

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setTimeout(r, 20));
  return done;
};

type Change = "revoke" | "regenerate" | "edit";
async function change(kind: Change, keyId: string) {
  const authority = authorityFor(env, keyId);
  if (kind === "revoke") return authority.revoke(keyId, org.orgId, actor);
  if (kind === "regenerate") return authority.regenerate(keyId, org.orgId, actor);
  return authority.update(keyId, org.orgId, { scopes: ["app:read"] }, audit);
}
/** Whether the old secret still passes what the change took away. */
const stillAllowed = async (kind: Change, key: string) =>
  (await verifyKey(env, key, kind === "edit" ? { permission: "app:upload" } : {})).valid;

/** Whether the cached mode (KV) still passes what the change took away, once the authority's KV writes have landed. */
const cachedStillAllowed = async (kind: Change, key: string, keyId: string) => {
  await authoritySettled(keyId);
  return (await verifyKey(env, key, { mode: "cached", ...(kind === "edit" ? { permission: "app:upload" as const } : {}) })).valid;
};

describe("a cache fill racing a change never brings the old record back", () => {
  for (const kind of ["revoke", "regenerate", "edit"] as const) {
    it(`${kind} issued while a fill is paused after its D1 read waits for it, then wins`, async () => {
      const { key, row } = await newKey();
      const g = gate();
      await runInDurableObject(authorityFor(env, row.id), (instance: KeyAuthority) => {
        instance.fillPause = g.pause;
      });
      const verifying = verifyKey(env, key, { mode: "cached", ...(kind === "edit" ? { permission: "app:upload" as const } : {}) }); // KV miss → fill
      await g.arrived; // the fill has read the old state and not yet written KV
      const changing = change(kind, row.id);
      expect(await settled(changing)).toBe(false); // serialized behind the fill
      g.open();
      expect((await verifying).valid).toBe(true); // began before the change: may see the old state
      await changing;
      expect(await stillAllowed(kind, key)).toBe(false);
      expect(await cachedStillAllowed(kind, key, row.id)).toBe(false);
      await runInDurableObject(authorityFor(env, row.id), (instance: KeyAuthority) => {
        instance.fillPause = null;
      });
    });

    it(`a fill that starts after ${kind} returned reads the new state`, async () => {
      const { key, row } = await newKey();
      await change(kind, row.id);
      await authoritySettled(row.id);
      await env.KEYS_KV.delete(keyRecordName(await hashKey(key))); // force the miss path
      expect(await stillAllowed(kind, key)).toBe(false);
      expect(await cachedStillAllowed(kind, key, row.id)).toBe(false);
    });

    it(`a fill completed before ${kind} is replaced once the authority's writes land`, async () => {
      const { key, row } = await newKey();
      expect(await cachedStillAllowed(kind, key, row.id)).toBe(true); // filled and cached
      await change(kind, row.id);
      expect(await stillAllowed(kind, key)).toBe(false);
      expect(await cachedStillAllowed(kind, key, row.id)).toBe(false);
    });
  }
});


describe("stress: concurrent verify / revoke / regenerate / edit", () => {
  const TRIALS = trials(1000, 120);
  it(`${count(TRIALS)} trials: zero verifications of a dead state that started after its management call returned`, async () => {
    const BATCH = 100;
    const seed = Number(process.env.STRESS_SEED ?? Date.now() % 1_000_000);
    const random = prng(seed);
    // Fills pause for a random while between their D1 read and their KV write, so fills that began
    // before a change end at every point of it.
    KeyAuthority.fillPauseAll = () => sleep(random() < 0.4 ? 0 : random() * 6);
    const keys = [];
    for (let i = 0; i < TRIALS; i += BATCH) {
      keys.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, TRIALS - i) }, (_, j) => newKey(`stress-${i + j}`)))));
    }
    let deadAccepted = 0;
    let liveRefused = 0;
    let checkedAfter = 0;
    let verifications = 0;
    try {
      for (let i = 0; i < TRIALS; i += BATCH) {
        await Promise.all(
          keys.slice(i, i + BATCH).map(async ({ key, row }, j) => {
            const kind: Change = (["revoke", "regenerate", "edit"] as const)[(i + j) % 3]!;
            const hash = await hashKey(key);
            let returned = false;
            // Verifications start at random times: before, during and after the change. Each one is
            // judged by whether it started after the change returned.
            const during = Array.from({ length: 4 }, async () => {
              await sleep(random() * 8);
              // Sometimes the cached record is gone (expired, evicted): the verification fills.
              if (random() < 0.3) await env.KEYS_KV.delete(keyRecordName(hash));
              const startedAfter = returned;
              verifications++;
              const allowed = await stillAllowed(kind, key);
              if (startedAfter) {
                checkedAfter++;
                if (allowed) deadAccepted++;
              }
            });
            await sleep(random() * 4);
            const result = await change(kind, row.id);
            returned = true;
            verifications++;
            checkedAfter++;
            if (await stillAllowed(kind, key)) deadAccepted++;
            if (kind === "regenerate" && result.ok && typeof result.value === "object" && "key" in result.value) {
              verifications++;
              if (!(await verifyKey(env, result.value.key)).valid) liveRefused++;
            }
            await Promise.all(during);
          }),
        );
      }
    } finally {
      KeyAuthority.fillPauseAll = null;
    }
    expect(verifications).toBeGreaterThanOrEqual(TRIALS * 5);
    expect(checkedAfter, "verifications that started after their change returned").toBeGreaterThan(TRIALS * 1.5);
    expect({ seed, deadAccepted, liveRefused }).toEqual({ seed, deadAccepted: 0, liveRefused: 0 });
  }, 180_000);
});
