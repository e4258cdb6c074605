//! Ctrl-C while bars are drawn (#27): the bars leave the terminal before ferry says it is
//! stopping, so no half-drawn bar stays above or around the messages. Driven on a real
//! pseudo-terminal (python3's pty), SIGINT sent once a bar is on the screen.

use crate::common;

use crate::copy_progress::{bar_lines, on_pty, screen};
use common::fake::Fake;

#[test]
fn ctrl_c_leaves_no_bar_on_the_screen() {
    let registry = Fake::start();
    // The layer never comes while the test runs: the bars stay up until the Ctrl-C.
    let _held = registry.serve_held_image("team/held", "1", 43);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let reference = format!("{}/team/held:1", registry.addr);
    // Interrupted once the overall bar counts the images (with its ETA: one template).
    let (code, raw) = on_pty(
        &["bundle", "-o", out.to_str().unwrap(), &reference],
        Some("0 of 1 images, 1 blobs"),
    );
    let shown = screen(&raw);
    assert!(raw.contains(" ETA "), "{raw:?}");
    assert_eq!(code, 130, "{shown:#?}");
    assert!(bar_lines(&shown).is_empty(), "{shown:#?}\n{raw:?}");
    // The messages, each on a line of its own.
    assert!(
        shown.iter().any(|l| l.starts_with("warning: stopping:")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|l| l.starts_with("warning: interrupted:")),
        "{shown:#?}"
    );
}
