//! Performing one attempt of one action, with its config already rendered: outbound calls
//! (webhooks, HTTP requests, Slack, Teams, email) and changes to findings and assets.
//!
//! Every outbound HTTP call goes through the egress policy's client after the URL is checked
//! (IP literals never reach the resolver, so they are checked here); SMTP connects only to an
//! address the policy allows. This module never retries, sleeps or touches execution rows:
//! it reports, through [`ActionError::retryable`], whether trying again could help.

use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use connectors::EgressPolicy;
use domain::Severity;
use domain::ids::{AssetId, CommentId, FindingId, PlatformEventId};
use domain::scan::FindingStatus;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use store::{CommentRecord, DynStore, FindingUpdate, HistoryRecord, NewPlatformEvent};

use super::template::MAX_OUTPUT_BYTES;

/// Why an attempt failed, and whether another could succeed.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionError {
    pub message: String,
    pub retryable: bool,
    /// What the target asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ActionError {
    pub fn permanent(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }
}

/// What actions need from the outside world.
#[derive(Clone)]
pub struct ActionDeps {
    pub store: DynStore,
    pub egress: EgressPolicy,
    pub client: reqwest::Client,
}

impl ActionDeps {
    pub fn new(store: DynStore, egress: EgressPolicy) -> Self {
        let client = egress.client();
        ActionDeps {
            store,
            egress,
            client,
        }
    }
}

/// The run an action belongs to, for history rows and default bodies.
pub struct RunInfo<'a> {
    pub runbook_name: &'a str,
    pub event: &'a str,
    pub payload: &'a Value,
    /// Names this action of this run, the same on every attempt and after a resume, so a
    /// receiver can tell a message sent again from a new one (`webhook-id`).
    pub message_id: String,
}

/// Performs one attempt of `action_type` with its rendered `config`; returns its output.
pub async fn perform(
    deps: &ActionDeps,
    action_type: &str,
    config: &Value,
    context: &Value,
    run: &RunInfo<'_>,
) -> Result<Value, ActionError> {
    let text = |key: &str| config.get(key).and_then(Value::as_str);
    match action_type {
        "http_request" => http_request(deps, config).await,
        "send_webhook" => send_webhook(deps, config, run).await,
        "send_slack_message" => slack(deps, config).await,
        "send_teams_message" => {
            let mut body = json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "text": text("text"),
            });
            // An absent title is left out: a null one is not a valid MessageCard field.
            if let Some(title) = text("title") {
                body["title"] = json!(title);
            }
            let url = text("webhook_url").unwrap_or_default();
            send(deps, "POST", url, &[], Some(Body::Json(body)), None).await
        }
        "send_email" => super::email::send(deps, config).await,
        "change_finding_status"
        | "change_finding_severity"
        | "add_finding_tags"
        | "assign_finding" => change_finding(deps, action_type, config, context, run).await,
        "append_comment" => append_comment(deps, config, context, run).await,
        "update_asset_criticality" | "add_asset_tags" => {
            change_asset(deps, action_type, config, context).await
        }
        other => Err(ActionError::permanent(format!(
            "{other} is not available in this version"
        ))),
    }
}

pub(super) enum Body {
    Json(Value),
    Text(String),
}

async fn http_request(deps: &ActionDeps, config: &Value) -> Result<Value, ActionError> {
    let method = config
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("POST");
    let url = config
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let headers = headers(config);
    let body = match config.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Body::Text(s.clone())),
        Some(other) => Some(Body::Json(other.clone())),
    };
    let expected = match config.get("expected_status") {
        Some(Value::Array(codes)) => Some(codes.iter().filter_map(Value::as_u64).collect()),
        Some(code) => code.as_u64().map(|c| vec![c]),
        None => None,
    };
    send(deps, method, url, &headers, body, expected).await
}

fn headers(config: &Value) -> Vec<(String, String)> {
    config
        .get("headers")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

async fn send_webhook(
    deps: &ActionDeps,
    config: &Value,
    run: &RunInfo<'_>,
) -> Result<Value, ActionError> {
    let url = config
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = match config.get("body") {
        None | Some(Value::Null) => json!({"type": run.event, "payload": run.payload}).to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let id = run.message_id.clone();
    let timestamp = Utc::now().timestamp().to_string();
    let mut headers = headers(config);
    headers.push(("content-type".into(), "application/json".into()));
    headers.push(("webhook-id".into(), id.clone()));
    headers.push(("webhook-timestamp".into(), timestamp.clone()));
    if let Some(secret) = config.get("secret").and_then(Value::as_str) {
        let signature = sign_webhook(secret, &id, &timestamp, &body);
        headers.push(("webhook-signature".into(), format!("v1,{signature}")));
    }
    send(deps, "POST", url, &headers, Some(Body::Text(body)), None).await
}

/// The Standard Webhooks signature: base64 of HMAC-SHA256 over `id.timestamp.body`, keyed by
/// the secret (the bytes after `whsec_`, base64-decoded, or the string itself otherwise).
pub fn sign_webhook(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|rest| b64.decode(rest).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    b64.encode(mac.finalize().into_bytes())
}

async fn slack(deps: &ActionDeps, config: &Value) -> Result<Value, ActionError> {
    let text = |key: &str| config.get(key).and_then(Value::as_str);
    if let Some(url) = text("webhook_url") {
        let body = json!({"text": text("text")});
        return send(deps, "POST", url, &[], Some(Body::Json(body)), None).await;
    }
    let base = text("api_base_url").unwrap_or("https://slack.com/api");
    let url = format!("{}/chat.postMessage", base.trim_end_matches('/'));
    let auth = format!("Bearer {}", text("token").unwrap_or_default());
    let body = json!({"channel": text("channel"), "text": text("text")});
    let headers = [("authorization".to_owned(), auth)];
    let answer = send(deps, "POST", &url, &headers, Some(Body::Json(body)), None).await?;
    if answer["body"]["ok"] == json!(true) {
        return Ok(answer);
    }
    let error = answer["body"]["error"].as_str().unwrap_or("unknown error");
    Err(ActionError {
        message: format!("slack answered {error}"),
        retryable: error == "ratelimited",
        retry_after: None,
    })
}

/// Sends one request through the egress policy; the output is `{status, body}` (JSON when it
/// parses, else text, cut at 64 KiB). A status outside `expected` (default: any 2xx) fails;
/// 408, 429 and 5xx may be retried, other statuses not.
pub(super) async fn send(
    deps: &ActionDeps,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Body>,
    expected: Option<Vec<u64>>,
) -> Result<Value, ActionError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| ActionError::permanent(format!("invalid url {url:?}: {e}")))?;
    deps.egress
        .check_url(&parsed)
        .map_err(|e| ActionError::permanent(e.to_string()))?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| ActionError::permanent(format!("invalid method {method:?}")))?;
    let mut request = deps.client.request(method, parsed);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request = match body {
        Some(Body::Json(value)) => request.json(&value),
        Some(Body::Text(text)) => request.body(text),
        None => request,
    };
    let response = request.send().await.map_err(|e| {
        let message = format!("request failed: {}", without_url(&e));
        if e.is_builder() || e.is_redirect() {
            ActionError::permanent(message)
        } else {
            ActionError::transient(message)
        }
    })?;

    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = response.bytes().await.unwrap_or_default();
    let cut = &bytes[..bytes.len().min(MAX_OUTPUT_BYTES)];
    let body = serde_json::from_slice::<Value>(cut)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(cut).into_owned()));

    let ok = match &expected {
        Some(codes) => codes.contains(&u64::from(status)),
        None => (200..300).contains(&status),
    };
    if ok {
        return Ok(json!({"status": status, "body": body}));
    }
    Err(ActionError {
        message: format!("unexpected status {status}"),
        retryable: status == 408 || status == 429 || status >= 500,
        retry_after,
    })
}

/// A transport error's text without the URL, which may carry a token in its query.
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

/// The id an action targets: its config's, or the payload's default.
fn target_id<T: std::str::FromStr>(
    config: &Value,
    key: &str,
    context: &Value,
    default_path: &str,
) -> Result<T, ActionError> {
    let raw = config
        .get(key)
        .and_then(Value::as_str)
        .or_else(|| super::template::lookup(context, default_path).and_then(Value::as_str))
        .ok_or_else(|| ActionError::permanent(format!("no {key}: {default_path} is missing")))?;
    raw.parse()
        .map_err(|_| ActionError::permanent(format!("{key} {raw:?} is not an id")))
}

/// A store error is worth retrying only when the store says it is transient.
fn store_error(err: store::StoreError) -> ActionError {
    ActionError {
        message: err.to_string(),
        retryable: err.is_transient(),
        retry_after: None,
    }
}

fn tags_of(config: &Value) -> Vec<String> {
    match config.get("tags") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

async fn change_finding(
    deps: &ActionDeps,
    action_type: &str,
    config: &Value,
    context: &Value,
    run: &RunInfo<'_>,
) -> Result<Value, ActionError> {
    let id: FindingId = target_id(config, "finding_id", context, "finding.id")?;
    let before = deps
        .store
        .get_finding(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ActionError::permanent(format!("finding {id} does not exist")))?;
    let mut after = before.clone();
    let text = config.get(match action_type {
        "change_finding_status" => "status",
        "change_finding_severity" => "severity",
        _ => "assignee",
    });
    let text = text.and_then(Value::as_str).unwrap_or_default();
    let (field, event) = match action_type {
        "change_finding_status" => {
            after.status = text
                .parse::<FindingStatus>()
                .map_err(|_| ActionError::permanent(format!("unknown status {text:?}")))?;
            ("status", Some("finding_status_changed"))
        }
        "change_finding_severity" => {
            after.severity = text
                .parse::<Severity>()
                .map_err(|_| ActionError::permanent(format!("unknown severity {text:?}")))?;
            ("severity", Some("finding_severity_changed"))
        }
        "assign_finding" => {
            after.assignee = Some(text.to_owned()).filter(|a| !a.is_empty());
            ("assignee", Some("finding_assigned"))
        }
        _ => {
            for tag in tags_of(config) {
                if !after.tags.contains(&tag) {
                    after.tags.push(tag);
                }
            }
            ("tags", None)
        }
    };
    let old = serde_json::to_value(&before).unwrap_or_default()[field].clone();
    let new = serde_json::to_value(&after).unwrap_or_default()[field].clone();
    // The output has the same shape whether or not anything changed, so a later action's
    // template can read the field either way.
    if old == new {
        return Ok(json!({"finding_id": id, "changed": false, field: new}));
    }

    let now = Utc::now();
    let history = vec![HistoryRecord {
        id: uuid::Uuid::now_v7(),
        finding_id: id,
        created_at: now,
        actor: format!("runbook:{}", run.runbook_name),
        field: field.to_owned(),
        old_value: Some(old.clone()).filter(|v| !v.is_null()),
        new_value: Some(new.clone()).filter(|v| !v.is_null()),
    }];
    let events = event
        .map(|event_type| {
            let mut payload = json!({"finding": after});
            match field {
                "status" => {
                    payload["old_status"] = old.clone();
                    payload["new_status"] = new.clone();
                }
                "severity" => {
                    payload["old_severity"] = old.clone();
                    payload["new_severity"] = new.clone();
                }
                _ => payload["assignee"] = new.clone(),
            }
            NewPlatformEvent {
                id: PlatformEventId::new(),
                event_type: event_type.to_owned(),
                payload,
                created_at: now,
            }
        })
        .into_iter()
        .collect();
    let update = FindingUpdate {
        finding: after,
        history,
        events,
    };
    deps.store
        .update_finding(&update)
        .await
        .map_err(store_error)?;
    Ok(json!({"finding_id": id, "changed": true, field: new}))
}

async fn append_comment(
    deps: &ActionDeps,
    config: &Value,
    context: &Value,
    run: &RunInfo<'_>,
) -> Result<Value, ActionError> {
    let id: FindingId = target_id(config, "finding_id", context, "finding.id")?;
    if deps
        .store
        .get_finding(id)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(ActionError::permanent(format!(
            "finding {id} does not exist"
        )));
    }
    let comment = CommentRecord {
        id: CommentId::new(),
        finding_id: id,
        author: format!("runbook:{}", run.runbook_name),
        body: config["body"].as_str().unwrap_or_default().to_owned(),
        created_at: Utc::now(),
    };
    deps.store
        .insert_comment(&comment)
        .await
        .map_err(store_error)?;
    Ok(json!({"finding_id": id, "comment_id": comment.id}))
}

async fn change_asset(
    deps: &ActionDeps,
    action_type: &str,
    config: &Value,
    context: &Value,
) -> Result<Value, ActionError> {
    let id: AssetId = target_id(config, "asset_id", context, "asset.id")?;
    let mut asset = deps
        .store
        .get_asset(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ActionError::permanent(format!("asset {id} does not exist")))?;
    if action_type == "update_asset_criticality" {
        let value = &config["criticality"];
        let level = value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| ActionError::permanent(format!("criticality {value} is not 1 to 5")))?;
        asset.criticality = level;
    } else {
        for tag in tags_of(config) {
            if !asset.tags.contains(&tag) {
                asset.tags.push(tag);
            }
        }
    }
    asset.updated_at = Utc::now();
    deps.store.update_asset(&asset).await.map_err(store_error)?;
    Ok(json!({"asset_id": id, "criticality": asset.criticality, "tags": asset.tags}))
}
