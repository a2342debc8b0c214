CREATE TABLE api_tokens (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE integrations (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    vendor         TEXT NOT NULL,
    config         JSONB NOT NULL,
    sealed_secrets BYTEA,
    sealed_auth    BYTEA,
    is_active      BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    deleted_at     TIMESTAMPTZ
);

-- One row per delivery, accepted or rejected. Accepted rows start `pending` and are the
-- orchestrator's queue; rejected rows are `none` and never queued.
CREATE TABLE ci_events (
    id              UUID PRIMARY KEY,
    integration_id  UUID NOT NULL,
    vendor          TEXT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    delivery_id     TEXT,
    vendor_event    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    signature_valid BOOLEAN NOT NULL,
    secret_slot     SMALLINT,
    action_taken    TEXT NOT NULL,
    repeat_count    BIGINT NOT NULL DEFAULT 0,
    event           JSONB NOT NULL,
    payload         BYTEA,
    state           TEXT NOT NULL,
    locked_until    TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE UNIQUE INDEX ci_events_delivery ON ci_events (integration_id, delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX ci_events_audit ON ci_events (integration_id, id);
CREATE INDEX ci_events_pending ON ci_events (id) WHERE state = 'pending';

CREATE TABLE platform_events (
    seq         BIGSERIAL PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    payload     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
