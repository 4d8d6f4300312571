CREATE TABLE datacenters (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    token_sealed TEXT NOT NULL,
    gateway TEXT NOT NULL DEFAULT '',
    embedded BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'offline',
    state_reason TEXT NOT NULL DEFAULT 'not contacted yet',
    last_contact_at BIGINT,
    runtime TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    cpu_millicores BIGINT NOT NULL DEFAULT 0,
    memory_mb BIGINT NOT NULL DEFAULT 0,
    components BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE team_datacenters (
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    datacenter_id BIGINT NOT NULL REFERENCES datacenters(id) ON DELETE CASCADE,
    opened_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, datacenter_id)
);

CREATE TABLE apps (
    id BIGSERIAL PRIMARY KEY,
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (team_id, name)
);

-- Which datacenter holds each component, so requests go to the right one.
CREATE TABLE component_locations (
    app_id BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    datacenter_id BIGINT NOT NULL REFERENCES datacenters(id),
    PRIMARY KEY (app_id, name)
);
