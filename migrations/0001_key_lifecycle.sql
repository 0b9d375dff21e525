ALTER TABLE `api_keys` ADD `disabled_at` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `not_before` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `allowed_networks` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `metadata` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_key_hash` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_key_prefix` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_expires_at` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `previous_last_used_at` integer;--> statement-breakpoint
ALTER TABLE `org_policies` ADD `require_networks_for_admin` integer DEFAULT false NOT NULL;