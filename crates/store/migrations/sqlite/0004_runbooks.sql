-- Runbooks, their executions, and the cursor of the matcher over the platform-event log.

CREATE TABLE runbooks (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    definition            TEXT NOT NULL,
    is_active             INTEGER NOT NULL,
    version               INTEGER NOT NULL,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    breaker_tripped_at    TEXT,
    last_fired_at         TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

CREATE TABLE runbook_executions (
    id                     TEXT PRIMARY KEY,
    runbook_id             TEXT NOT NULL REFERENCES runbooks (id) ON DELETE CASCADE,
    runbook_version        INTEGER NOT NULL,
    platform_event_id      TEXT NOT NULL,
    event_seq              INTEGER NOT NULL,
    trigger_event          TEXT NOT NULL,
    trigger_payload        TEXT NOT NULL,
    status                 TEXT NOT NULL,
    skip_reason            TEXT,
    concurrency_key_value  TEXT,
    max_concurrency        INTEGER NOT NULL,
    position               INTEGER NOT NULL DEFAULT 0,
    context                TEXT NOT NULL,
    action_results         TEXT NOT NULL,
    wait_signal            TEXT,
    due_at                 TEXT,
    locked_until           TEXT,
    created_at             TEXT NOT NULL,
    started_at             TEXT,
    finished_at            TEXT,
    duration_ms            INTEGER,
    UNIQUE (runbook_id, platform_event_id)
);

CREATE INDEX runbook_executions_by_runbook ON runbook_executions (runbook_id, event_seq DESC);
CREATE INDEX runbook_executions_open ON runbook_executions (status, event_seq)
    WHERE status IN ('queued', 'running', 'waiting');
CREATE INDEX runbook_executions_finished ON runbook_executions (finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE runbook_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    seq           INTEGER NOT NULL,
    owner         TEXT,
    locked_until  TEXT
);
-- Runbooks react to events appended after they could exist: the cursor starts at the end.
INSERT INTO runbook_cursor (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM platform_events;
