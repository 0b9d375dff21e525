ALTER TABLE `org_policies` ADD `unused_key_days` integer;--> statement-breakpoint
ALTER TABLE `org_policies` ADD `expire_unused_keys` integer DEFAULT false NOT NULL;