//! Outbound calls to vendors and user-named endpoints. Every one goes through the single
//! [`egress::EgressPolicy`]: no loopback, private, link-local or metadata addresses unless
//! allowed, the address checked being the one connected to, redirects re-checked, and a
//! timeout on every call.
//!
//! This crate never reads the database and never decides what to call; callers hand it a URL,
//! credentials and a body.

pub mod azure_devops;
pub mod bamboo;
pub mod bitbucket_cloud;
pub mod bitbucket_server;
pub mod egress;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod jenkins;
pub mod pipelines;
pub mod scm;

pub use egress::{EgressError, EgressPolicy};
pub use http::{CallError, Credential};
pub use scm::{CommentOutcome, PrTarget, ScmClient, ScmKind, StatusReport};
