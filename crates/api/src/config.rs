//! The one documented configuration. Defaults < `--config` TOML file < environment; validated
//! once at start-up, naming the bad key. Loading never writes files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The deployment posture. Production fails closed on unsigned webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Posture {
    Production,
    Development,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `pmapd` can be told. Each field is one row of the configuration table in the
/// README, under its environment name.
#[derive(Clone)]
pub struct Config {
    /// `PMAP_LISTEN`: the listen address.
    pub listen: SocketAddr,
    /// `PMAP_DATA_DIR`: embedded database, objects, generated master key.
    pub data_dir: PathBuf,
    /// `PMAP_DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `PMAP_OBJECT_STORE_URL`: where SBOMs and reports go.
    pub object_store_url: String,
    /// `PMAP_ENV`: `production` (default) or `development`.
    pub env: Posture,
    /// `CI_WEBHOOK_ALLOW_UNSIGNED`: accept deliveries for integrations without a secret even in
    /// production.
    pub allow_unsigned: bool,
    /// `PMAP_MASTER_KEY`: base64 of 32 bytes; when unset, generated into the data dir.
    pub master_key: Option<String>,
    /// `PMAP_ADMIN_TOKEN`: accepted as an admin bearer token.
    pub admin_token: Option<String>,
    /// `PMAP_EGRESS_ALLOW`: CIDRs or hosts outbound calls may reach although private.
    pub egress_allow: Vec<String>,
    /// `PMAP_PUBLIC_URL`: used in links in PR comments and statuses.
    pub public_url: String,
    /// `PMAP_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `PMAP_EXECUTION_RETENTION_DAYS`: finished runbook executions older than this are
    /// deleted (default 30; 0 keeps them).
    pub execution_retention_days: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.split(':').next())
            .field("env", &self.env)
            .field("allow_unsigned", &self.allow_unsigned)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// The optional TOML file: the same settings, named without the `PMAP_` prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    object_store_url: Option<String>,
    env: Option<String>,
    ci_webhook_allow_unsigned: Option<bool>,
    master_key: Option<String>,
    admin_token: Option<String>,
    egress_allow: Option<Vec<String>>,
    public_url: Option<String>,
    log_format: Option<String>,
    execution_retention_days: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Loads the configuration from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, |key| std::env::var(key).ok())
    }

    /// Loads with an explicit environment lookup (tests pass a map).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_config = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let pick = |key: &str, from_file: Option<String>| env(key).or(from_file);

        let listen_raw = pick("PMAP_LISTEN", file_config.listen).unwrap_or("127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw
            .parse()
            .map_err(|_| invalid("PMAP_LISTEN", format!("{listen_raw:?} is not host:port")))?;
        let data_dir = env("PMAP_DATA_DIR")
            .map(PathBuf::from)
            .or(file_config.data_dir)
            .unwrap_or_else(|| PathBuf::from("./pmap-data"));
        let database_url = pick("PMAP_DATABASE_URL", file_config.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/pmap.db", data_dir.display()));
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(invalid(
                "PMAP_DATABASE_URL",
                "use sqlite://… or postgres://…",
            ));
        }
        let object_store_url = pick("PMAP_OBJECT_STORE_URL", file_config.object_store_url)
            .unwrap_or_else(|| format!("file://{}/objects", data_dir.display()));
        let env_value = pick("PMAP_ENV", file_config.env).unwrap_or("production".into());
        let posture = match env_value.as_str() {
            "production" => Posture::Production,
            "development" => Posture::Development,
            other => {
                return Err(invalid(
                    "PMAP_ENV",
                    format!("{other:?}; expected production or development"),
                ));
            }
        };
        let allow_unsigned = match env("CI_WEBHOOK_ALLOW_UNSIGNED") {
            Some(v) => parse_bool("CI_WEBHOOK_ALLOW_UNSIGNED", &v)?,
            None => file_config.ci_webhook_allow_unsigned.unwrap_or(false),
        };
        let master_key = pick("PMAP_MASTER_KEY", file_config.master_key);
        let admin_token = pick("PMAP_ADMIN_TOKEN", file_config.admin_token);
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "PMAP_ADMIN_TOKEN",
                "must be at least 16 characters",
            ));
        }
        let egress_allow = match env("PMAP_EGRESS_ALLOW") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => file_config.egress_allow.unwrap_or_default(),
        };
        let public_url =
            pick("PMAP_PUBLIC_URL", file_config.public_url).unwrap_or(format!("http://{listen}"));
        let log_format = match pick("PMAP_LOG_FORMAT", file_config.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "PMAP_LOG_FORMAT",
                    format!("{other:?}; expected text or json"),
                ));
            }
        };

        let execution_retention_days = match env("PMAP_EXECUTION_RETENTION_DAYS") {
            Some(v) => v.trim().parse().map_err(|_| {
                invalid(
                    "PMAP_EXECUTION_RETENTION_DAYS",
                    "must be a whole number of days",
                )
            })?,
            None => file_config.execution_retention_days.unwrap_or(30),
        };

        Ok(Config {
            listen,
            data_dir,
            database_url,
            object_store_url,
            env: posture,
            allow_unsigned,
            master_key,
            admin_token,
            egress_allow,
            public_url,
            log_format,
            execution_retention_days,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn parse_bool(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(invalid(
            key,
            format!("{value:?} is not a boolean (true/false, 1/0, yes/no)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(None, |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://./pmap-data/pmap.db");
        assert_eq!(config.object_store_url, "file://./pmap-data/objects");
        assert_eq!(config.env, Posture::Production);
        assert!(!config.allow_unsigned);
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn env_wins_over_file_and_bad_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("pmap-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pmap.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nenv = \"development\"\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("PMAP_LISTEN", "127.0.0.1:9100")].into();
        let config = Config::load_from(Some(&path), |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.env, Posture::Development);

        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&path), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");

        let err = load(&[("PMAP_ENV", "staging")]).unwrap_err().to_string();
        assert!(err.starts_with("PMAP_ENV"), "{err}");
        let err = load(&[("CI_WEBHOOK_ALLOW_UNSIGNED", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CI_WEBHOOK_ALLOW_UNSIGNED"), "{err}");
    }
}
