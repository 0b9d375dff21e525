import { db } from "../storage/db";
import { publishPending } from "../storage/events";
import { resumeStalledDeliveries } from "../webhooks/consumer";
import { DAILY_CRON, runDaily } from "./daily";

/**
 * The cron triggers (wrangler.toml): every minute the outbox is published (what a queue outage or a
 * dead isolate left behind) and stalled webhook deliveries are resumed; once a day the expiry and hygiene check runs (`src/lifecycle/daily.ts`)
 * and its events are published with the rest.
 */
export async function handleScheduled(controller: Pick<ScheduledController, "cron" | "scheduledTime">, env: Env): Promise<void> {
  if (controller.cron === DAILY_CRON) {
    const report = await runDaily(env, controller.scheduledTime);
    console.log(JSON.stringify({ cron: controller.cron, ...report }));
  }
  const published = await publishPending(db(env.DB), env.EVENTS);
  // Deliveries whose message was lost (dead-lettered, or its attempt died) are sent again.
  const resumed = await resumeStalledDeliveries(db(env.DB), env.EVENTS);
  if (published || resumed) console.log(JSON.stringify({ cron: controller.cron, published, resumed }));
}
