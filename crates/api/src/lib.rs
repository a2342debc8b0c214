//! The HTTP API (axum): routing, authentication, the webhook receivers, and the only place
//! errors become HTTP responses. Handlers parse, delegate to `store`/`engine`/`webhooks`, and
//! answer; they hold no business rules of their own.

pub mod auth;
pub mod config;
pub mod crypto;
pub mod error;
mod openapi;
mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::Config;
use crypto::Cipher;
use error::ApiError;
use routes::gate;
use routes::runbooks;
use routes::{assets, events, health, integrations, webhooks};
use routes::{finding_rules, findings, scans};
use state::AppState;
use store::{DeliveryWriter, DynStore};

#[derive(OpenApi)]
#[openapi(info(title = "PMAP", description = "DevSecOps integration hub"))]
struct ApiDoc;

/// Builds the router and the OpenAPI document from the same route table.
fn router(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(integrations::create, integrations::list))
        .routes(routes!(
            integrations::get,
            integrations::patch,
            integrations::delete
        ))
        .routes(routes!(integrations::test))
        .routes(routes!(integrations::audit))
        .routes(routes!(gate::pr_status))
        .routes(routes!(gate::pr_comment))
        .routes(routes!(events::emit, events::list))
        .routes(routes!(webhooks::receive))
        .routes(routes!(scans::import))
        .routes(routes!(scans::list))
        .routes(routes!(scans::get))
        .routes(routes!(scans::findings))
        .routes(routes!(findings::list))
        .routes(routes!(findings::get, findings::patch))
        .routes(routes!(findings::history))
        .routes(routes!(findings::comments, findings::comment))
        .routes(routes!(finding_rules::create, finding_rules::list))
        .routes(routes!(
            finding_rules::get,
            finding_rules::patch,
            finding_rules::delete
        ))
        .routes(routes!(assets::list))
        .routes(routes!(assets::get, assets::patch))
        .routes(routes!(runbooks::create, runbooks::list))
        .routes(routes!(runbooks::catalog))
        .routes(routes!(
            runbooks::get,
            runbooks::put,
            runbooks::patch,
            runbooks::delete
        ))
        .routes(routes!(runbooks::reset_breaker))
        .routes(routes!(runbooks::dry_run))
        .routes(routes!(runbooks::executions))
        .routes(routes!(runbooks::execution))
        .routes(routes!(runbooks::signal))
        .split_for_parts();
    let api = openapi::finish(api);
    let openapi_json = api.clone();
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi_json.clone();
                async move { axum::Json(doc) }
            }),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(webhooks::MAX_DELIVERY_BYTES))
        .layer(middleware::from_fn(request_span))
        .with_state(state);
    (router, api)
}

/// One span per request. Only the path is recorded: query strings may carry tokens.
async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::debug_span!(
        "request",
        id = %uuid::Uuid::now_v7(),
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let response = next.run(request).await;
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

/// The process-wide Prometheus recorder (installed once, shared by every server in-process).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// Names and explains the webhook metrics and shows them at zero from the start, so dashboards
/// and alerts see every series before the first delivery.
fn describe_metrics() {
    metrics::describe_counter!(
        "pmap_webhooks_accepted_total",
        "deliveries stored, by vendor"
    );
    metrics::describe_counter!(
        "pmap_webhooks_rejected_total",
        "deliveries refused, by vendor and reason"
    );
    metrics::describe_counter!("pmap_webhooks_duplicate_total", "redeliveries answered 200");
    metrics::describe_counter!(
        "pmap_ci_events_processed_total",
        "CI events the orchestrator finished, by action taken"
    );
    for vendor in domain::Vendor::ALL
        .iter()
        .filter(|v| v.archetype() == domain::Archetype::CiWebhook)
    {
        let vendor = vendor.as_str();
        metrics::counter!("pmap_webhooks_accepted_total", "vendor" => vendor).absolute(0);
        for reason in ["rejected_signature", "rejected_unsigned", "invalid_payload"] {
            metrics::counter!("pmap_webhooks_rejected_total", "vendor" => vendor,
                "reason" => reason)
            .absolute(0);
        }
    }
}

/// Opens the configured database and applies its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    let store = store::connect(&config.database_url)
        .await
        .context("opening the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// A running server: its address, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish, then stops the workers.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task")?
    }

    /// Waits until the server stops (after `shutdown` is cancelled from elsewhere).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Refuses to start with a master key that cannot open the secrets already stored (a replica
/// that generated its own key, a key file restored from the wrong backup): it would answer
/// every delivery to those integrations with an error instead.
async fn check_master_key(store: &DynStore, cipher: &Cipher) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store.list_integrations(after, 100).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id);
        let Some(sealed) = page
            .iter()
            .find(|r| r.sealed_secrets.is_some() || r.sealed_auth.is_some())
        else {
            continue;
        };
        let opened = routes::integrations::open_secrets(cipher, sealed).is_ok()
            && routes::integrations::open_auth(cipher, sealed).is_ok();
        anyhow::ensure!(
            opened,
            "the master key does not open the secrets stored in this database: set \
             PMAP_MASTER_KEY (or the data directory's master.key) to the key that sealed them"
        );
        return Ok(());
    }
}

/// Starts the HTTP server and the background workers.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let store = open_store(config).await?;
    let cipher = Cipher::load_or_generate(config.master_key.as_deref(), &config.data_dir)?;
    check_master_key(&store, &cipher).await?;
    let stored = Arc::new(Notify::new());
    let gate_wake = Arc::new(Notify::new());
    let egress =
        connectors::EgressPolicy::new(&config.egress_allow).context("PMAP_EGRESS_ALLOW")?;
    let outbound = Arc::new(engine::outbound::Outbound {
        egress: egress.clone(),
        credentials: Arc::new(gate::SealedCredentials(cipher.clone())),
        public_url: config.public_url.clone(),
    });
    let retention = (config.execution_retention_days > 0)
        .then(|| Duration::from_secs(config.execution_retention_days * 86_400));
    let runbook_engine = engine::runbooks::RunbookEngine::new(
        engine::runbooks::ActionDeps::new(store.clone(), egress),
        engine::runbooks::EngineSettings { retention },
    );
    let state = Arc::new(AppState {
        writer: DeliveryWriter::spawn(store.clone(), stored.clone()),
        events: store::event_writer(store.clone()),
        delivery_budget: Arc::new(tokio::sync::Semaphore::new(
            routes::webhooks::DELIVERY_BUDGET_KIB,
        )),
        store: store.clone(),
        cipher,
        posture: config.env,
        allow_unsigned: config.allow_unsigned,
        admin_token_hash: config.admin_token.as_deref().map(auth::hash_token),
        public_url: config.public_url.clone(),
        integrations: Default::default(),
        rejections: Default::default(),
        metrics: metrics_handle(),
        outbound: outbound.clone(),
        gate_wake: gate_wake.clone(),
        runbooks: Some(runbook_engine.clone()),
    });
    let (app, _) = router(state.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();

    let workers = CancellationToken::new();
    let gate_worker = tokio::spawn(engine::gate::run_worker(
        outbound.clone(),
        store.clone(),
        gate_wake,
        workers.clone(),
    ));
    let consumer = tokio::spawn(engine::orchestrator::run(
        outbound,
        store.clone(),
        stored,
        workers.clone(),
    ));
    let flusher = tokio::spawn(flush_rejections(state.clone(), workers.clone()));
    let runbook_worker = tokio::spawn(runbook_engine.run(workers.clone()));

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("serving HTTP")?;
        workers.cancel();
        let _ = consumer.await;
        let _ = gate_worker.await;
        let _ = flusher.await;
        let _ = runbook_worker.await;
        state.rejections.flush_all(&state.store);
        Ok(())
    });
    tracing::info!(%addr, backend = store.backend(), "pmapd listening");
    if config.env == config::Posture::Development || config.allow_unsigned {
        tracing::warn!(
            env = ?config.env,
            allow_unsigned = config.allow_unsigned,
            "unsigned webhook deliveries are accepted for integrations without a secret"
        );
    }
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}

async fn flush_rejections(state: Arc<AppState>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                state.rejections.flush_all(&state.store);
            }
        }
    }
}
