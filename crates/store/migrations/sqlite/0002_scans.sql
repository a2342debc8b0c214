-- Repositories (and later other targets) that findings belong to.
CREATE TABLE assets (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    repo_url    TEXT NOT NULL UNIQUE,
    criticality INTEGER NOT NULL DEFAULT 3,
    tags        TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE scans (
    id               TEXT PRIMARY KEY,
    integration_id   TEXT,
    tool             TEXT NOT NULL,
    format           TEXT NOT NULL,
    status           TEXT NOT NULL,
    external_scan_id TEXT,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    counts           TEXT NOT NULL,
    new_counts       TEXT NOT NULL,
    fixed_count      INTEGER NOT NULL DEFAULT 0,
    baseline_scan_id TEXT,
    commit_sha       TEXT,
    branch_name      TEXT,
    pr_number        INTEGER,
    target_branch    TEXT,
    repo_url         TEXT NOT NULL,
    asset_id         TEXT,
    triggered_by     TEXT NOT NULL
);
CREATE INDEX scans_baseline ON scans (repo_url, tool, branch_name, id) WHERE pr_number IS NULL;

-- One row per problem per repository and tool; `scan_id` is the scan that last saw it.
CREATE TABLE findings (
    id                TEXT PRIMARY KEY,
    repo_url          TEXT NOT NULL,
    tool              TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    scan_id           TEXT NOT NULL,
    rule_id           TEXT NOT NULL,
    title             TEXT NOT NULL,
    description       TEXT,
    severity          TEXT NOT NULL,
    vendor_severity   TEXT,
    status            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    file_path         TEXT,
    line              INTEGER,
    package_name      TEXT,
    package_version   TEXT,
    purl              TEXT,
    vulnerability_ids TEXT NOT NULL,
    cvss_score        REAL,
    tags              TEXT NOT NULL,
    assignee          TEXT,
    asset_id          TEXT,
    first_seen_at     TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    UNIQUE (repo_url, tool, fingerprint)
);
CREATE INDEX findings_list ON findings (repo_url, status, id);

-- Which findings each scan reported, as they stood then: the baseline of later scans.
CREATE TABLE scan_findings (
    scan_id     TEXT NOT NULL,
    finding_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    is_new      INTEGER NOT NULL,
    PRIMARY KEY (scan_id, finding_id)
);

CREATE TABLE finding_history (
    id          TEXT PRIMARY KEY,
    finding_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT
);
CREATE INDEX finding_history_finding ON finding_history (finding_id, id);

CREATE TABLE finding_comments (
    id          TEXT PRIMARY KEY,
    finding_id  TEXT NOT NULL,
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX finding_comments_finding ON finding_comments (finding_id, id);

CREATE TABLE finding_rules (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    conditions  TEXT NOT NULL,
    changes     TEXT NOT NULL,
    is_active   INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
