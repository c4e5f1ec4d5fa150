//! The shared half of kubectl-mlbackup's DataRobot work: the wire protocol between the plugin
//! and the in-pod helper (and, as it lands, the DataRobot API client and the bulk engine), so
//! that the plugin and the helper run one implementation.

/// The version of the JSON Lines protocol the helper speaks on stdout (the `protocolVersion`
/// field of its first line). The plugin refuses a helper with another version.
pub const PROTOCOL_VERSION: u32 = 1;
