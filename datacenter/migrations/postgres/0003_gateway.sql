CREATE TABLE http_routes (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    domain TEXT NOT NULL,
    path_prefix TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX http_routes_domain ON http_routes (domain);

CREATE TABLE tcp_routes (
    id TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    listen_port BIGINT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE certificates (
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    domains TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    cert_pem TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team, name)
);
