//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL database on the server
//! named by `PMAP_TEST_DATABASE_URL`, one per test so tests never see each other's rows.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::Connection;

/// Which backend the test run targets: `postgres` when `PMAP_TEST_DATABASE_URL` names a
/// PostgreSQL server, else `sqlite`.
pub fn backend() -> &'static str {
    match std::env::var("PMAP_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A database that exists for the caller alone. Keep it alive as long as the database is used:
/// the SQLite file lives in its temporary directory.
pub struct FreshDatabase {
    pub url: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// Creates a fresh, empty database of the backend under test.
pub async fn fresh_database() -> anyhow::Result<FreshDatabase> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let data_dir = dir.path().to_path_buf();
    let url = match std::env::var("PMAP_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => create_pg_database(&server).await?,
        _ => format!("sqlite://{}/pmap.db", data_dir.display()),
    };
    Ok(FreshDatabase {
        url,
        data_dir,
        _dir: dir,
    })
}

/// Creates `<database of the URL>_<random>` (or `pmap_test_<random>` beside the maintenance
/// database), so a run can drop everything it made by its prefix.
async fn create_pg_database(server: &str) -> anyhow::Result<String> {
    let server = server.split('?').next().unwrap_or(server);
    let current = server.rsplit('/').next().unwrap_or_default();
    let prefix = match current {
        "" | "postgres" | "template1" => "pmap_test",
        other => other,
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("{prefix}_{}", &random[..12]);
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .with_context(|| "connecting to PMAP_TEST_DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .context("creating a test database")?;
    let (base, _) = server
        .rsplit_once('/')
        .context("database URL has no path")?;
    Ok(format!("{base}/{name}"))
}
