//! Outbound calls to vendors and user-named endpoints. Every one goes through the single
//! [`egress::EgressPolicy`]: no loopback, private, link-local or metadata addresses unless
//! allowed, the address checked being the one connected to, redirects re-checked, and a
//! timeout on every call.
//!
//! This crate never reads the database and never decides what to call; callers hand it a URL,
//! credentials and a body.

pub mod egress;

pub use egress::{EgressError, EgressPolicy};
