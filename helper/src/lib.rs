//! The shared half of kubectl-mlbackup's DataRobot work, one implementation for the plugin and
//! the in-pod helper: a typed DataRobot API v2 client ([`api`]), the bulk engine ([`engine`]),
//! the plan of what to change ([`plan`]), the deployment snapshot ([`snapshot`]) and the wire
//! protocol between plugin and helper ([`protocol`]).

pub mod api;
pub mod engine;
pub mod files;
pub mod logging;
pub mod plan;
pub mod protocol;
pub mod retry;
pub mod secret;
pub mod snapshot;
pub mod text;
pub mod tls;

pub use protocol::PROTOCOL_VERSION;
