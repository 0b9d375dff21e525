// zod without its ~40 bundled locales (~60 KiB gzip of our bundle). `wrangler.toml` aliases the
// bare specifier "zod" here for the deployed bundle only; the exports are zod's own
// (`zod/v4/classic/external.js`) minus `locales`, which nothing here uses (errors stay English,
// registered by zod itself on first schema construction), and minus the `compile` JIT and
// `fromJSONSchema` (~12 KiB gzip), which nothing here calls either. Keep in step with that file on upgrades;
// `npm test` runs against full zod and `test/console-browser` and `npm run bench` against this one.
export * as core from "./zod-core-lean.js";
export * from "../../node_modules/zod/v4/classic/schemas.js";
export * from "../../node_modules/zod/v4/classic/checks.js";
export * from "../../node_modules/zod/v4/classic/errors.js";
export * from "../../node_modules/zod/v4/classic/parse.js";
export * from "../../node_modules/zod/v4/classic/compat.js";
export { globalRegistry, registry, config, memoizer, $output, $input, $brand, clone, regexes, treeifyError, prettifyError, formatError, flattenError, TimePrecision, util, NEVER, INVALID, toZod, getDiscriminatedOption } from "../../node_modules/zod/v4/core/index.js";
export { toJSONSchema } from "../../node_modules/zod/v4/core/json-schema-processors.js";
export { deepPartial } from "../../node_modules/zod/v4/classic/deep-partial.js";
export { input, output } from "../../node_modules/zod/v4/classic/in-out.js";
export { ZodISODateTime, ZodISODate, ZodISOTime, ZodISODuration } from "../../node_modules/zod/v4/classic/iso.js";
export * as iso from "../../node_modules/zod/v4/classic/iso.js";
export * as coerce from "../../node_modules/zod/v4/classic/coerce.js";
