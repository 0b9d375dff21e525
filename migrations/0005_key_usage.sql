CREATE TABLE `key_usage` (
	`key_id` text NOT NULL,
	`org_id` text NOT NULL,
	`hour` integer NOT NULL,
	`outcome` text NOT NULL,
	`count` integer NOT NULL,
	PRIMARY KEY(`key_id`, `hour`, `outcome`)
);
--> statement-breakpoint
CREATE INDEX `key_usage_org_hour` ON `key_usage` (`org_id`,`hour`);