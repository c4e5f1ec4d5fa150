//! Pod exec over WebSocket (placeholder: being written).
