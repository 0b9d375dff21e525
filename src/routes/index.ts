import type { App } from "../app";
import { registerCreateApp } from "./apps/create-app";
import { registerListAuditLog } from "./audit/list-audit-log";
import { registerGetPolicy } from "./policy/get-policy";
import { registerPutPolicy } from "./policy/put-policy";
import { registerDeleteApp } from "./apps/delete-app";
import { registerListApps } from "./apps/list-apps";
import { registerCreateKey } from "./keys/create-key";
import { registerDisableKey } from "./keys/disable-key";
import { registerEnableKey } from "./keys/enable-key";
import { registerEndKeyOverlap } from "./keys/end-overlap";
import { registerGetKey } from "./keys/get-key";
import { registerListKeys } from "./keys/list-keys";
import { registerRegenerateKey } from "./keys/regenerate-key";
import { registerRevealKey } from "./keys/reveal-key";
import { registerRevokeKey } from "./keys/revoke-key";
import { registerUpdateKey } from "./keys/update-key";
import { registerHealth } from "./health";
import { registerCreateOrg } from "./orgs/create-org";
import { registerReportLeakedKeys } from "./secret-scanning/report-leaks";
import { registerGetDailyUsage } from "./usage/get-daily-usage";
import { registerGetKeyUsage } from "./usage/get-key-usage";
import { registerGetOrgUsage } from "./usage/get-org-usage";
import { registerVerifyKey } from "./verify/verify-key";
import { registerCreateWebhook } from "./webhooks/create-webhook";
import { registerDeleteWebhook } from "./webhooks/delete-webhook";
import { registerGetWebhook } from "./webhooks/get-webhook";
import { registerListWebhookDeliveries } from "./webhooks/list-deliveries";
import { registerListWebhooks } from "./webhooks/list-webhooks";
import { registerResendWebhookDelivery } from "./webhooks/resend-delivery";

/** Every endpoint, one file each, grouped by resource. */
export function registerRoutes(app: App): App {
  registerHealth(app);
  // Verification
  registerVerifyKey(app);
  // Organizations
  registerCreateOrg(app);
  // Keys
  registerCreateKey(app);
  registerListKeys(app);
  registerGetKey(app);
  registerUpdateKey(app);
  registerRevokeKey(app);
  registerRegenerateKey(app);
  registerRevealKey(app);
  registerDisableKey(app);
  registerEnableKey(app);
  registerEndKeyOverlap(app);
  // Apps
  registerCreateApp(app);
  registerListApps(app);
  registerDeleteApp(app);
  // Usage
  registerGetKeyUsage(app);
  registerGetOrgUsage(app);
  registerGetDailyUsage(app);
  // Secret scanning partners
  registerReportLeakedKeys(app);
  // Policy and audit
  registerGetPolicy(app);
  registerPutPolicy(app);
  registerListAuditLog(app);
  // Webhooks
  registerCreateWebhook(app);
  registerListWebhooks(app);
  registerGetWebhook(app);
  registerDeleteWebhook(app);
  registerListWebhookDeliveries(app);
  registerResendWebhookDelivery(app);
  return app;
}
