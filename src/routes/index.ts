import type { App } from "../app";
import { registerCreateKey } from "./keys/create-key";
import { registerGetKey } from "./keys/get-key";
import { registerListKeys } from "./keys/list-keys";
import { registerRegenerateKey } from "./keys/regenerate-key";
import { registerRevealKey } from "./keys/reveal-key";
import { registerRevokeKey } from "./keys/revoke-key";
import { registerUpdateKey } from "./keys/update-key";
import { registerCreateOrg } from "./orgs/create-org";

/** Every endpoint, one file each, grouped by resource. */
export function registerRoutes(app: App): App {
  // Organizations
  registerCreateOrg(app);
  // Keys
  registerCreateKey(app);
  registerListKeys(app);
  registerGetKey(app);
  registerUpdateKey(app);
  registerRevokeKey(app);
  registerRegenerateKey(app);
  registerRevealKey(app);
  return app;
}
