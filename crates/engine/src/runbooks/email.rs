//! `send_email` over SMTP with `lettre`. The server's name is resolved here and the connection
//! made to an address the egress policy allows, so a name that resolves to a private address
//! is refused like any other outbound call.
//!
//! Plain SMTP only: this module never reads credentials from integrations.
// FIXME: no STARTTLS or implicit TLS yet — relays that demand it refuse the message.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::actions::{ActionDeps, ActionError};

const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn send(deps: &ActionDeps, config: &Value) -> Result<Value, ActionError> {
    let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default();
    let host = text("smtp_host");
    let port = config
        .get("smtp_port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(25);

    let mailbox = |address: &str| {
        address
            .parse::<Mailbox>()
            .map_err(|e| ActionError::permanent(format!("invalid address {address:?}: {e}")))
    };
    let recipients: Vec<&str> = match config.get("to") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let mut builder = Message::builder()
        .from(mailbox(text("from"))?)
        .subject(text("subject"));
    for to in &recipients {
        builder = builder.to(mailbox(to)?);
    }
    let message = builder
        .body(text("body").to_owned())
        .map_err(|e| ActionError::permanent(format!("message not built: {e}")))?;

    let address = allowed_address(deps, host, port).await?;
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .timeout(Some(SMTP_TIMEOUT))
            .build();
    let response = transport.send(message).await.map_err(|e| ActionError {
        message: format!("smtp: {e}"),
        retryable: !e.is_permanent(),
        retry_after: None,
    })?;
    Ok(json!({"code": response.code().to_string(), "recipients": recipients}))
}

/// The first address of `host` the egress policy allows.
async fn allowed_address(
    deps: &ActionDeps,
    host: &str,
    port: u16,
) -> Result<std::net::SocketAddr, ActionError> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ActionError {
            message: format!("smtp host {host:?} does not resolve: {e}"),
            retryable: true,
            retry_after: None,
        })?;
    let mut seen = false;
    for address in addresses {
        seen = true;
        if deps.egress.ip_allowed(address.ip()) {
            return Ok(address);
        }
    }
    Err(ActionError::permanent(if seen {
        format!("smtp host {host:?} resolves only to addresses outside the egress policy")
    } else {
        format!("smtp host {host:?} has no address")
    }))
}
