-- The fan-out and report steps of CI events and scans: one row per (owner, step), written
-- before the outbound call and finished after it, so a step never runs twice unnoticed.
-- `owner` is `ci_event:<id>` or `scan:<id>`.
CREATE TABLE orchestration_steps (
    owner       TEXT NOT NULL,
    step        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (owner, step)
);

-- The newest CI event seen for each pull request: where its gate reports to.
CREATE TABLE pr_contexts (
    integration_id TEXT NOT NULL,
    repo           TEXT NOT NULL,
    pr_number      INTEGER NOT NULL,
    repo_url       TEXT,
    commit_sha     TEXT,
    vendor_event   TEXT NOT NULL,
    ci_event_id    TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (integration_id, repo, pr_number)
);
CREATE INDEX pr_contexts_repo_url ON pr_contexts (repo_url, pr_number);

-- How far a consumer of the platform-event log has read.
CREATE TABLE event_cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
INSERT INTO event_cursors (name, seq) SELECT 'gate', COALESCE(MAX(seq), 0) FROM platform_events;

CREATE INDEX scans_pr ON scans (repo_url, pr_number, id) WHERE pr_number IS NOT NULL;
