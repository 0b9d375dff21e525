import type { D1Migration } from "@cloudflare/vitest-plugin";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** PEM (PKCS #8) of the secret scanning reporter key the worker trusts in tests (vitest.config.ts). */
      TEST_REPORTER_PRIVATE_KEY: string;
    }
  }
}
