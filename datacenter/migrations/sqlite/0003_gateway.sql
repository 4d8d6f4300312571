CREATE TABLE http_routes (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    domain TEXT NOT NULL,
    path_prefix TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX http_routes_domain ON http_routes (domain);

CREATE TABLE tcp_routes (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    listen_port INTEGER NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE certificates (
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    domains TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    cert_pem TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team, name)
);
