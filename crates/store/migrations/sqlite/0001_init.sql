CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE integrations (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    vendor         TEXT NOT NULL,
    config         TEXT NOT NULL,
    sealed_secrets BLOB,
    sealed_auth    BLOB,
    is_active      INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    deleted_at     TEXT
);

-- One row per delivery, accepted or rejected. Accepted rows start `pending` and are the
-- orchestrator's queue; rejected rows are `none` and never queued.
CREATE TABLE ci_events (
    id              TEXT PRIMARY KEY,
    integration_id  TEXT NOT NULL,
    vendor          TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    delivery_id     TEXT,
    vendor_event    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    signature_valid INTEGER NOT NULL,
    secret_slot     INTEGER,
    action_taken    TEXT NOT NULL,
    repeat_count    INTEGER NOT NULL DEFAULT 0,
    event           TEXT NOT NULL,
    payload         BLOB,
    state           TEXT NOT NULL,
    locked_until    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE UNIQUE INDEX ci_events_delivery ON ci_events (integration_id, delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX ci_events_audit ON ci_events (integration_id, id);
CREATE INDEX ci_events_pending ON ci_events (id) WHERE state = 'pending';

CREATE TABLE platform_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
