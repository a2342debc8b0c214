//! The runbook engine: definitions and their validation, the catalog, templates, retry,
//! actions, the matcher that turns platform events into executions, and the executor that
//! runs them as persisted state machines.
//!
//! It never speaks HTTP to its callers (the API does) and never holds a run only in memory:
//! every step that matters is a row first.

pub mod actions;
pub mod catalog;
pub mod definition;
mod email;
pub mod executor;
pub mod matcher;
pub mod retry;
pub mod template;

pub use actions::ActionDeps;
pub use definition::{Format, Issue, Runbook, parse_document, validate};
pub use executor::{EngineSettings, RunbookEngine};
