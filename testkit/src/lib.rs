//! Test kit of kubectl-mlbackup: in-process fake Kubernetes and DataRobot API servers that behave
//! like the real ones where the plugin can tell, deterministic sample data, and the sandbox that
//! puts them together (`mlbackup-sandbox`).

pub mod datarobot;
pub mod faults;
pub mod kube;
pub mod proxy;
pub mod query;
pub mod s3;
pub mod sample;
pub mod sandbox;
pub mod serve;
pub mod snapshot;
pub mod tls;
pub mod tools;
pub mod wait;
pub mod world;
