ALTER TABLE `api_keys` ADD `credits` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_refill` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_refilled_at` integer;