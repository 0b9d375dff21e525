import type { App } from "../app";
import { registerCreateOrg } from "./orgs/create-org";

/** Every endpoint, one file each, grouped by resource. */
export function registerRoutes(app: App): App {
  // Organizations
  registerCreateOrg(app);
  return app;
}
