-- Repositories (and later other targets) that findings belong to.
CREATE TABLE assets (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    repo_url    TEXT NOT NULL UNIQUE,
    criticality BIGINT NOT NULL DEFAULT 3,
    tags        JSONB NOT NULL DEFAULT '[]',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE scans (
    id               UUID PRIMARY KEY,
    integration_id   UUID,
    tool             TEXT NOT NULL,
    format           TEXT NOT NULL,
    status           TEXT NOT NULL,
    external_scan_id TEXT,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    counts           JSONB NOT NULL,
    new_counts       JSONB NOT NULL,
    fixed_count      BIGINT NOT NULL DEFAULT 0,
    baseline_scan_id UUID,
    commit_sha       TEXT,
    branch_name      TEXT,
    pr_number        BIGINT,
    target_branch    TEXT,
    repo_url         TEXT NOT NULL,
    asset_id         UUID,
    triggered_by     TEXT NOT NULL
);
CREATE INDEX scans_baseline ON scans (repo_url, tool, branch_name, id) WHERE pr_number IS NULL;

-- One row per problem per repository and tool; `scan_id` is the scan that last saw it.
CREATE TABLE findings (
    id                UUID PRIMARY KEY,
    repo_url          TEXT NOT NULL,
    tool              TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    scan_id           UUID NOT NULL,
    rule_id           TEXT NOT NULL,
    title             TEXT NOT NULL,
    description       TEXT,
    severity          TEXT NOT NULL,
    vendor_severity   TEXT,
    status            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    file_path         TEXT,
    line              BIGINT,
    package_name      TEXT,
    package_version   TEXT,
    purl              TEXT,
    vulnerability_ids JSONB NOT NULL,
    cvss_score        DOUBLE PRECISION,
    tags              JSONB NOT NULL,
    assignee          TEXT,
    asset_id          UUID,
    first_seen_at     TIMESTAMPTZ NOT NULL,
    last_seen_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (repo_url, tool, fingerprint)
);
CREATE INDEX findings_list ON findings (repo_url, status, id);

-- Which findings each scan reported, as they stood then: the baseline of later scans.
CREATE TABLE scan_findings (
    scan_id     UUID NOT NULL,
    finding_id  UUID NOT NULL,
    fingerprint TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    is_new      BOOLEAN NOT NULL,
    PRIMARY KEY (scan_id, finding_id)
);

CREATE TABLE finding_history (
    id          UUID PRIMARY KEY,
    finding_id  UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   JSONB,
    new_value   JSONB
);
CREATE INDEX finding_history_finding ON finding_history (finding_id, id);

CREATE TABLE finding_comments (
    id          UUID PRIMARY KEY,
    finding_id  UUID NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX finding_comments_finding ON finding_comments (finding_id, id);

CREATE TABLE finding_rules (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    priority    BIGINT NOT NULL,
    conditions  JSONB NOT NULL,
    changes     JSONB NOT NULL,
    is_active   BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
