-- Per team and datacenter; NULL means no limit.
ALTER TABLE team_datacenters ADD COLUMN max_components INTEGER;
ALTER TABLE team_datacenters ADD COLUMN max_memory_mb INTEGER;
ALTER TABLE team_datacenters ADD COLUMN max_cpu_millicores INTEGER;
