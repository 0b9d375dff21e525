import { z } from "@hono/zod-openapi";
import { ID_PATTERN } from "../domain/key-format";
import { invalidFields } from "../errors";

/**
 * Keyset pagination shared by every list: the client passes back `nextCursor` as `cursor`, and each
 * page is one indexed range read however deep it is (no OFFSET, no COUNT).
 */

export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 100;

/** The `limit` and `cursor` query parameters, with their documentation. */
export const PageQuery = {
  limit: z.coerce
    .number()
    .int("must be a whole number")
    .min(1, "must be at least 1")
    .max(LIST_LIMIT_MAX, `must be at most ${LIST_LIMIT_MAX}`)
    .default(LIST_LIMIT_DEFAULT)
    .openapi({ param: { name: "limit", in: "query" }, description: "Items per page, 1–100.", example: 50 }),
  cursor: z
    .string()
    .max(200, "is not a cursor from this API")
    .optional()
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "The `nextCursor` of the previous page, as given. Absent for the first page.",
      example: "djE6MDFqZDh4N2EwYjFjMmQzZTRmNWc",
    }),
};

// The cursor is the last listed id, wrapped so clients treat it as opaque and we may change it later.
const CURSOR_VERSION = "v1:";

/**
 * The cursor that continues a listing after the item `lastId`.
 * @example encodeCursor(page.at(-1).id) // "djE6MDFqZDh4…"
 */
export function encodeCursor(lastId: string | number): string {
  return btoa(CURSOR_VERSION + lastId).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * The page of a listing read one row beyond `limit` (the extra row says whether another page follows),
 * and the cursor to that page, null on the last.
 * @example const { page, nextCursor } = pageOf(rows, limit, (r) => r.id)
 */
export function pageOf<T>(rows: readonly T[], limit: number, idOf: (row: T) => string | number): { page: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return { page, nextCursor: rows.length > limit ? encodeCursor(idOf(page.at(-1)!)) : null };
}

/**
 * The id a cursor continues after; a 400 naming `cursor` when it is not one of ours.
 * @example decodeCursor(query.cursor, /^\d{1,15}$/) // audit entries have integer ids
 */
export function decodeCursor(cursor: string, idPattern: RegExp = ID_PATTERN): string {
  let text = "";
  try {
    text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    // not base64: refused below
  }
  const id = text.slice(CURSOR_VERSION.length);
  if (!text.startsWith(CURSOR_VERSION) || !idPattern.test(id)) {
    throw invalidFields([{ field: "cursor", message: "is not a cursor from this API" }], "query");
  }
  return id;
}
