//! Tests of the built `kubectl-mlbackup` binary: its command line, its output and its exit
//! codes, run with a temporary HOME and kubeconfig (never the user's real context) against the
//! in-process fakes of `mlbackup-testkit`.

mod app;
mod backup;
mod catalog;
mod completion;
mod contract;
mod deployments;
mod diff;
mod encryption;
mod exact;
mod help;
mod in_cluster;
mod in_pod;
mod locations;
mod pod_security;
mod proxy;
mod restore;
mod runbook;
mod schedule;
mod spark_cleanup;
mod support;
mod untrusted;
mod verify;
mod version;
