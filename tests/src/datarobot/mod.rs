//! Fake DataRobot API v2 (placeholder: being written).
