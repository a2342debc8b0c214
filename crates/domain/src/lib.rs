//! PMAP's vocabulary: CI events, vendors and their archetypes, severities and typed ids.
//!
//! This crate owns the shapes every other crate agrees on. It never does IO: no database, no
//! network, no clock reads (callers pass timestamps in).

pub mod ci_event;
pub mod condition;
pub mod duration;
pub mod finding_rule;
pub mod gate;
pub mod ids;
pub mod integration;
pub mod scan;
pub mod severity;
pub mod text;
pub mod vendor;

pub use ci_event::{Action, BuildInfo, CiEvent, EventType, NormalizedEvent};
pub use ids::{CiEventId, IntegrationId};
pub use severity::Severity;
pub use vendor::{Archetype, Vendor};
