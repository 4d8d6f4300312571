CREATE TABLE components (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    team TEXT NOT NULL,
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    desired_running INTEGER NOT NULL DEFAULT 0,
    version TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (team, app, name)
);

CREATE TABLE secrets (
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (component_id, name)
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    app TEXT NOT NULL,
    component TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_component ON events(team, app, component, created_at);
CREATE INDEX events_team ON events(team, created_at);

CREATE TABLE event_lines (
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    level TEXT NOT NULL,
    step TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (event_id, seq)
);
