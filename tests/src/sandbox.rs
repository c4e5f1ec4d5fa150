//! The sandbox: both fakes started together and seeded (placeholder: being written).
