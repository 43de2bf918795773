//! Running a tile through the fused layers (placeholder; see the foundation issue).
