CREATE TABLE datacenters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    token_sealed TEXT NOT NULL,
    gateway TEXT NOT NULL DEFAULT '',
    embedded INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'offline',
    state_reason TEXT NOT NULL DEFAULT 'not contacted yet',
    last_contact_at INTEGER,
    runtime TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    cpu_millicores INTEGER NOT NULL DEFAULT 0,
    memory_mb INTEGER NOT NULL DEFAULT 0,
    components INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE team_datacenters (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    datacenter_id INTEGER NOT NULL REFERENCES datacenters(id) ON DELETE CASCADE,
    opened_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, datacenter_id)
);

CREATE TABLE apps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (team_id, name)
);

-- Which datacenter holds each component, so requests go to the right one.
CREATE TABLE component_locations (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    datacenter_id INTEGER NOT NULL REFERENCES datacenters(id),
    PRIMARY KEY (app_id, name)
);
