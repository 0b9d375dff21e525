// The "zod" entry the deployed bundle resolves to (see zod-lean.js for why).
import * as z from "./zod-lean.js";
export * from "./zod-lean.js";
export { z, z as default };
