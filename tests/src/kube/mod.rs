//! Fake Kubernetes API server (placeholder: being written).

pub mod access;
pub mod exec;
