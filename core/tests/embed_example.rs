//! Runs the embedding example (`core/examples/embed_cluster.rs`): a gateway and two edges in
//! memory complete every frame, and the stealing edge takes part.

#[path = "../examples/embed_cluster.rs"]
#[allow(dead_code)] // its `main` is for `cargo run --example`
mod embed_cluster;

#[test]
fn the_embedding_example_completes_its_frames_with_both_edges() {
    let r = embed_cluster::run();
    assert_eq!(r.completed.len(), embed_cluster::FRAMES, "{r:?}");
    let mut frames = r.completed.clone();
    frames.sort_by_key(|f| f.number);
    frames.dedup();
    assert_eq!(
        frames.len(),
        embed_cluster::FRAMES,
        "a frame completed twice: {r:?}"
    );
    // Every tile computed once by an edge; the gateway had edges, so it computed none.
    assert_eq!(r.tiles[0], 0, "{r:?}");
    assert_eq!(
        r.tiles[1] + r.tiles[2],
        9 * embed_cluster::FRAMES as u32,
        "{r:?}"
    );
    assert!(r.tiles[2] > 0, "the helper never stole: {r:?}");
}
