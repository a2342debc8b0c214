//! Helpers shared by the integration tests: the real-world corpus, spawning the app on port 0,
//! fresh databases. Never linked into the server.

pub mod app;
pub mod db;
pub mod scan_corpus;
pub mod webhook_corpus;
