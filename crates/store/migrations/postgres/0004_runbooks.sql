-- Runbooks, their executions, and the cursor of the matcher over the platform-event log.

CREATE TABLE runbooks (
    id                    UUID PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    definition            JSONB NOT NULL,
    is_active             BOOLEAN NOT NULL,
    version               BIGINT NOT NULL,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    breaker_tripped_at    TIMESTAMPTZ,
    last_fired_at         TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE runbook_executions (
    id                     UUID PRIMARY KEY,
    runbook_id             UUID NOT NULL REFERENCES runbooks (id) ON DELETE CASCADE,
    runbook_version        BIGINT NOT NULL,
    platform_event_id      UUID NOT NULL,
    event_seq              BIGINT NOT NULL,
    trigger_event          TEXT NOT NULL,
    trigger_payload        JSONB NOT NULL,
    status                 TEXT NOT NULL,
    skip_reason            TEXT,
    concurrency_key_value  TEXT,
    max_concurrency        BIGINT NOT NULL,
    position               BIGINT NOT NULL DEFAULT 0,
    context                JSONB NOT NULL,
    action_results         JSONB NOT NULL,
    wait_signal            TEXT,
    due_at                 TIMESTAMPTZ,
    locked_until           TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL,
    started_at             TIMESTAMPTZ,
    finished_at            TIMESTAMPTZ,
    duration_ms            BIGINT,
    UNIQUE (runbook_id, platform_event_id)
);

CREATE INDEX runbook_executions_by_runbook ON runbook_executions (runbook_id, event_seq DESC);
CREATE INDEX runbook_executions_open ON runbook_executions (status, event_seq)
    WHERE status IN ('queued', 'running', 'waiting');
CREATE INDEX runbook_executions_finished ON runbook_executions (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE runbook_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    seq           BIGINT NOT NULL,
    owner         TEXT,
    locked_until  TIMESTAMPTZ
);
-- Runbooks react to events appended after they could exist: the cursor starts at the end.
INSERT INTO runbook_cursor (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM platform_events;
