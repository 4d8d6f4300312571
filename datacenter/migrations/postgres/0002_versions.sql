ALTER TABLE components ADD COLUMN status_message TEXT;
ALTER TABLE components ADD COLUMN webhook_secret TEXT;

CREATE TABLE versions (
    component_id BIGINT NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    language TEXT NOT NULL,
    run_command TEXT NOT NULL,
    build_ms BIGINT NOT NULL,
    artifact TEXT NOT NULL,
    path_prepend TEXT NOT NULL,
    spec TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    health_path TEXT,
    PRIMARY KEY (component_id, number)
);
