ALTER TABLE `api_keys` ADD `rate_limits` text;--> statement-breakpoint
ALTER TABLE `org_policies` ADD `rate_limits` text;