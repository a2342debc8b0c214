//! Condition groups without code (placeholder until the engine lands).
