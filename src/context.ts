import type { FormValues } from "./console/forms";
import type { ConsoleSession } from "./console/session";
import type { VerifiedKey } from "./verification/verify-key";

/** Hono's environment for every route: the Worker bindings plus per-request variables. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    /** The authenticated caller's key, set by `authenticate()`. */
    caller: VerifiedKey;
    /** The outcome code for the request's log line (an error code or a verification code). */
    outcome: string;
    /** The console session behind the request, set by the console's session check. */
    session: ConsoleSession;
    /** The console form a POST submitted, parsed once by the console's CSRF check. */
    form: FormValues;
  };
}
