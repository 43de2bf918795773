//! Fused Tile Partitioning (placeholder; see the foundation issue).
