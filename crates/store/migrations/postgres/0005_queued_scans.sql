-- The queued scans an import may complete, found by the integration, repository and commit.
CREATE INDEX scans_queued ON scans (integration_id, repo_url, commit_sha, id)
    WHERE status = 'queued';
