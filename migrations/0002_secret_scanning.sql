CREATE TABLE `secret_scan_reports` (
	`body_hash` text PRIMARY KEY NOT NULL,
	`key_identifier` text NOT NULL,
	`tokens` integer NOT NULL,
	`received_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `org_policies` ADD `leaked_key_action` text DEFAULT 'revoke' NOT NULL;