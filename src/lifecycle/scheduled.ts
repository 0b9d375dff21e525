import { db } from "../storage/db";
import { publishPending } from "../storage/events";
import { DAILY_CRON, runDaily } from "./daily";

/**
 * The cron triggers (wrangler.toml): every minute the outbox is published (what a queue outage or a
 * dead isolate left behind); once a day the expiry and hygiene check runs (`src/lifecycle/daily.ts`)
 * and its events are published with the rest.
 */
export async function handleScheduled(controller: Pick<ScheduledController, "cron" | "scheduledTime">, env: Env): Promise<void> {
  if (controller.cron === DAILY_CRON) {
    const report = await runDaily(env, controller.scheduledTime);
    console.log(JSON.stringify({ cron: controller.cron, ...report }));
  }
  const published = await publishPending(db(env.DB), env.EVENTS);
  if (published) console.log(JSON.stringify({ cron: controller.cron, published }));
}
