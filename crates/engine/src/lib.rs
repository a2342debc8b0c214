//! The engine: what happens after a delivery is stored. Today that is the CI event consumer,
//! which takes queued CI events and records what was done with them, emitting the platform
//! event `ci_event_received` for runbooks.
//!
//! The engine never speaks HTTP and never parses vendor payloads; it works on stored rows.

pub mod fanout;
pub mod gate;
pub mod orchestrator;
pub mod outbound;
pub mod render;
pub mod runbooks;
