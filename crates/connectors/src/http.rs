//! One outbound vendor call: credentials applied the vendor's way, a timeout, bounded retries
//! that honour `429`/`Retry-After`, and errors that say which vendor answered what.
//!
//! This module owns how a call is made, never which call to make; it never logs a credential
//! and never retries a 4xx other than 429.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Each attempt gives up after this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The outbound credential of an integration (`config.auth`, opened by the caller).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credential {
    #[default]
    None,
    Token(String),
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("Credential::None"),
            Credential::Token(_) => f.write_str("Credential::Token([redacted])"),
            Credential::Basic { username, .. } => {
                write!(f, "Credential::Basic({username}, [redacted])")
            }
        }
    }
}

impl Credential {
    /// From an opened `auth` object: `username` + `password` is Basic, else `token`/`api_key`.
    pub fn from_auth(auth: Option<&Value>) -> Credential {
        let field = |name: &str| {
            auth.and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match (field("username"), field("password"), field("token")) {
            (Some(username), Some(password), _) => Credential::Basic { username, password },
            (Some(username), None, Some(token)) => Credential::Basic {
                username,
                password: token,
            },
            (_, _, Some(token)) => Credential::Token(token),
            _ => field("api_key").map_or(Credential::None, Credential::Token),
        }
    }
}

/// How a vendor wants a token presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// GitLab's `PRIVATE-TOKEN: <token>`.
    PrivateToken,
    /// Azure DevOps personal access tokens: Basic with an empty user name.
    BasicPassword,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{vendor} answered {status}: {body}")]
    Status {
        vendor: &'static str,
        status: u16,
        body: String,
    },
    #[error("{vendor} could not be reached: {source}")]
    Transport {
        vendor: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}")]
    Config(String),
}

impl CallError {
    /// True when a later attempt may succeed (rate limits, server errors, lost connections).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Status { status, .. } => *status == 429 || *status >= 500,
            CallError::Transport { .. } => true,
            CallError::Config(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Bounded retries with exponential backoff; `Retry-After` wins when the vendor sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// How long to wait before attempt `attempt + 1` after a failed attempt `attempt` (1-based),
/// or `None` when the failure is final. `status` is `None` for a transport failure.
pub fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    status: Option<u16>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let retryable = match status {
        None => true,
        Some(s) => s == 429 || s >= 500,
    };
    if !retryable {
        return None;
    }
    let backoff = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let asked = retry_after.and_then(|value| parse_retry_after(value, now));
    Some(asked.unwrap_or(backoff).min(policy.max_delay))
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What a vendor answered: the status, the headers, and the body as JSON (`Null` when empty
/// or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A vendor's API at one base URL with one credential.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub vendor: &'static str,
    pub http: reqwest::Client,
    pub base: String,
    pub credential: Credential,
    pub scheme: TokenScheme,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Headers every call carries (API versions, `Accept`).
    pub headers: Vec<(&'static str, String)>,
}

/// One request: method, path under the base (or an absolute URL), query, JSON body, headers.
#[derive(Clone, Debug, Default)]
pub struct Call<'a> {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub json: Option<&'a Value>,
    pub headers: Vec<(String, String)>,
}

impl Endpoint {
    pub fn new(
        vendor: &'static str,
        http: reqwest::Client,
        base: &str,
        credential: Credential,
        scheme: TokenScheme,
    ) -> Endpoint {
        Endpoint {
            vendor,
            http,
            base: base.trim_end_matches('/').to_owned(),
            credential,
            scheme,
            retry: RetryPolicy::default(),
            timeout: CALL_TIMEOUT,
            headers: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a call, retrying transient failures within the policy; a non-2xx final answer is
    /// an error carrying the start of the vendor's body.
    pub async fn send(&self, method: Method, call: Call<'_>) -> Result<Answer, CallError> {
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(method.clone(), &call).await;
            let (status, retry_after) = match &outcome {
                Ok(answer) if answer.status.is_success() => return outcome,
                Ok(answer) => (
                    Some(answer.status.as_u16()),
                    answer
                        .headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                ),
                Err(_) => (None, None),
            };
            let delay = retry_delay(
                &self.retry,
                attempt,
                status,
                retry_after.as_deref(),
                SystemTime::now(),
            );
            let Some(delay) = delay else {
                return outcome.and_then(|answer| Err(self.status_error(answer)));
            };
            tracing::warn!(
                vendor = self.vendor,
                attempt,
                status = status.unwrap_or(0),
                delay_ms = delay.as_millis() as u64,
                "outbound call failed, retry scheduled"
            );
            metrics::counter!("pmap_outbound_retries_total", "vendor" => self.vendor).increment(1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn status_error(&self, answer: Answer) -> CallError {
        let mut body = match &answer.body {
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if body.len() > 300 {
            let mut cut = 300;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        CallError::Status {
            vendor: self.vendor,
            status: answer.status.as_u16(),
            body,
        }
    }

    async fn attempt(&self, method: Method, call: &Call<'_>) -> Result<Answer, CallError> {
        let mut request = self
            .http
            .request(method, self.url(&call.path))
            .timeout(self.timeout)
            .query(&call.query);
        request = match (&self.credential, self.scheme) {
            (Credential::None, _) => request,
            (Credential::Token(token), TokenScheme::Bearer) => request.bearer_auth(token),
            (Credential::Token(token), TokenScheme::PrivateToken) => {
                request.header("PRIVATE-TOKEN", token)
            }
            (Credential::Token(token), TokenScheme::BasicPassword) => {
                request.basic_auth("", Some(token))
            }
            (Credential::Basic { username, password }, _) => {
                request.basic_auth(username, Some(password))
            }
        };
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        for (name, value) in &call.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                request = request.header(name, value);
            }
        }
        if let Some(json) = call.json {
            request = request.json(json);
        }
        let transport = |source| CallError::Transport {
            vendor: self.vendor,
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Percent-encodes one path segment (`group/sub` becomes `group%2Fsub`).
pub fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attempt: u32, status: Option<u16>, retry_after: Option<&str>, expected: Option<u64>) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let delay = retry_delay(&RetryPolicy::default(), attempt, status, retry_after, now);
        assert_eq!(
            delay.map(|d| d.as_millis() as u64),
            expected,
            "attempt {attempt} status {status:?} retry-after {retry_after:?}"
        );
    }

    #[test]
    fn retry_delays() {
        check(1, Some(503), None, Some(200));
        check(2, Some(500), None, Some(400));
        check(3, Some(500), None, None);
        check(1, None, None, Some(200));
        check(1, Some(429), Some("2"), Some(2000));
        check(1, Some(429), Some("3600"), Some(30_000));
        check(
            1,
            Some(429),
            Some("Tue, 14 Nov 2023 22:13:25 GMT"),
            Some(5000),
        );
        check(1, Some(429), Some("soon"), Some(200));
        check(1, Some(404), None, None);
        check(1, Some(401), Some("5"), None);
        check(1, Some(422), None, None);
    }

    #[test]
    fn credentials_from_auth() {
        let auth = serde_json::json!({"token": "t"});
        assert_eq!(
            Credential::from_auth(Some(&auth)),
            Credential::Token("t".into())
        );
        let auth = serde_json::json!({"username": "u", "password": "p"});
        assert!(matches!(
            Credential::from_auth(Some(&auth)),
            Credential::Basic { .. }
        ));
        assert_eq!(Credential::from_auth(None), Credential::None);
        assert!(!format!("{:?}", Credential::Token("secret".into())).contains("secret"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("group/sub project"), "group%2Fsub%20project");
    }
}
