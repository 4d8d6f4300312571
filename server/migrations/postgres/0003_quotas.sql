-- Per team and datacenter; NULL means no limit.
ALTER TABLE team_datacenters ADD COLUMN max_components BIGINT;
ALTER TABLE team_datacenters ADD COLUMN max_memory_mb BIGINT;
ALTER TABLE team_datacenters ADD COLUMN max_cpu_millicores BIGINT;
