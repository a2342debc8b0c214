//! The API end to end: the real server on port 0, a fresh database of the backend under test
//! (SQLite by default, PostgreSQL when `PMAP_TEST_DATABASE_URL` names a server).

mod support;

mod audit;
mod bad_input;
mod conformance;
mod gate;
mod gate_ci_servers;
mod integrations;
mod policy;
mod queued_scans;
mod runbook_actions;
mod runbook_email;
mod runbook_records;
mod runbook_reliability;
mod runbooks;
mod scan_bad_input;
mod scan_rules;
mod scan_support;
mod scans;
