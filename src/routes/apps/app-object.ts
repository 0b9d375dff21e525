import { z } from "@hono/zod-openapi";
import type { apps } from "../../storage/schema";
import { Id, Timestamp } from "../schemas";

export const AppObject = z
  .object({ id: Id, orgId: Id, name: z.string(), createdAt: Timestamp })
  .openapi("App", { example: { id: "01jd8x9b2c3d4e5f6g7h", orgId: "01jd8x6w2m9k3v7q4r5t", name: "mobile", createdAt: "2026-11-22T14:00:00.000Z" } });

/** The API's view of an app row. */
export const toAppObject = (row: typeof apps.$inferSelect) => ({
  id: row.id,
  orgId: row.orgId,
  name: row.name,
  createdAt: new Date(row.createdAt).toISOString(),
});
