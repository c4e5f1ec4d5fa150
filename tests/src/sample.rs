//! Deterministic sample data for the sandbox (placeholder: being written).
