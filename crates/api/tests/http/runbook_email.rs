//! `send_email` against a real SMTP server: Python's `aiosmtpd` on a free loopback port, with a
//! handler (`tests/fixtures/smtp_sink.py`) that writes each accepted message to a file.
//!
//! Needs python3 with `aiosmtpd` (`pip install aiosmtpd`; `.ci/run` installs it). Without
//! python3 at all the test says so and passes; with python3 but no `aiosmtpd` it fails.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::runbooks::{app, create, emit, executions_until, finished};

/// The SMTP server, stopped when dropped.
struct SmtpSink {
    _child: Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server; `None` when python3 is missing.
    async fn start() -> Option<SmtpSink> {
        let python = Command::new("python3").arg("--version").output().await;
        if python.is_err() {
            eprintln!("python3 is not installed: the SMTP test of send_email does not run");
            return None;
        }
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .await
            .unwrap();
        assert!(
            probe.status.success(),
            "python3 lacks aiosmtpd (pip install aiosmtpd): {}",
            String::from_utf8_lossy(&probe.stderr)
        );

        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("messages.jsonl");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &listen,
                "-c",
                "smtp_sink.Sink",
            ])
            .arg(&out)
            .env("PYTHONPATH", &fixtures)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_listening(&mut child, port).await;
        Some(SmtpSink {
            _child: child,
            port,
            out,
            _dir: dir,
        })
    }

    /// The messages received so far.
    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_listening(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("aiosmtpd exited before listening: {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("aiosmtpd never listened on {port}");
}

#[tokio::test]
async fn send_email_delivers_to_an_smtp_server() {
    let Some(smtp) = SmtpSink::start().await else {
        return;
    };
    let app = app().await;
    let doc = json!({"name": "mail the assignee", "triggers": [{"event": "finding_assigned"}],
        "actions": [{"type": "send_email", "config": {
            "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
            "from": "PMAP <pmap@example.test>",
            "to": ["{{ assignee }}", "security@example.test"],
            "subject": "Assigned: {{ finding.title }}",
            "body": "{{ finding.title }} ({{ finding.severity }}) is yours now."}}]});
    let (status, created) = create(&app, &doc).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    emit(
        &app,
        "finding_assigned",
        json!({"finding": {"title": "SQL injection in orders", "severity": "high"},
            "assignee": "dev@example.test"}),
    )
    .await;
    let runs = executions_until(&app, id, |items| finished(items) == 1).await;
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    let output = &run["action_results"][0]["output"];
    assert_eq!(output["code"], "250", "{run}");
    assert_eq!(
        output["recipients"],
        json!(["dev@example.test", "security@example.test"])
    );

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message["mail_from"], "pmap@example.test");
    assert_eq!(
        message["rcpt_tos"],
        json!(["dev@example.test", "security@example.test"])
    );
    let content = message["content"].as_str().unwrap();
    let (headers, body) = content
        .split_once("\r\n\r\n")
        .or_else(|| content.split_once("\n\n"))
        .unwrap();
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .map(str::trim)
    };
    assert_eq!(
        header("From"),
        Some("PMAP <pmap@example.test>"),
        "{headers}"
    );
    assert_eq!(
        header("To"),
        Some("dev@example.test, security@example.test"),
        "{headers}"
    );
    assert_eq!(
        header("Subject"),
        Some("Assigned: SQL injection in orders"),
        "{headers}"
    );
    assert_eq!(
        body.trim_end(),
        "SQL injection in orders (high) is yours now."
    );
}

#[tokio::test]
async fn send_email_to_a_closed_port_is_retried_then_fails() {
    let app = app().await;
    let port = free_port();
    let doc = json!({"name": "nobody listens", "triggers": [{"event": "sbom_imported"}],
        "actions": [{"type": "send_email", "config": {
            "smtp_host": "127.0.0.1", "smtp_port": port, "from": "pmap@example.test",
            "to": "ops@example.test", "subject": "s", "body": "b"},
            "retry": {"max_attempts": 2, "initial_backoff": "10ms"}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap();
    emit(&app, "sbom_imported", json!({"sbom": {}})).await;
    let runs = executions_until(&app, id, |items| finished(items) == 1).await;
    let result = &runs[0]["action_results"][0];
    assert_eq!(runs[0]["status"], "failed", "{}", runs[0]);
    assert_eq!(result["attempts"], 2, "{result}");
    assert!(
        result["error"].as_str().unwrap().starts_with("smtp:"),
        "{result}"
    );
}
