import { everyDatabase } from "../storage/db";
import { publishPending } from "../storage/events";
import { resumeStalledDeliveries } from "../webhooks/consumer";
import { DAILY_CRON, runDaily } from "./daily";

/**
 * The cron triggers (wrangler.toml), over every database: every minute the outbox is published (what a queue outage or a
 * dead isolate left behind) and stalled webhook deliveries are resumed; once a day the expiry and hygiene check runs (`src/lifecycle/daily.ts`)
 * and its events are published with the rest.
 */
export async function handleScheduled(controller: Pick<ScheduledController, "cron" | "scheduledTime">, env: Env): Promise<void> {
  if (controller.cron === DAILY_CRON) {
    const report = await runDaily(env, controller.scheduledTime);
    console.log(JSON.stringify({ cron: controller.cron, ...report }));
  }
  let published = 0;
  let resumed = 0;
  // Every database's outbox and deliveries, one after another (each org's are all in one of them).
  for (const { database } of everyDatabase(env)) {
    published += await publishPending(database, env.EVENTS);
    // Deliveries whose message was lost (dead-lettered, or its attempt died) are sent again.
    resumed += await resumeStalledDeliveries(database, env.EVENTS);
  }
  if (published || resumed) console.log(JSON.stringify({ cron: controller.cron, published, resumed }));
}
