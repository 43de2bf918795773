//! Darknet cfg parser (placeholder; see the foundation issue).
