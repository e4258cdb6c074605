//! #21 item 4: `ferry serve` never sends a byte of a blob it has not checked since the file
//! last changed. A layer is fetched whole (verified), then changed in place on disk (same size,
//! same mtime): a Range request must not be answered from the changed bytes.

use crate::common;
use crate::served;

use std::os::unix::fs::FileExt;

use common::*;
use served::*;

#[test]
fn a_range_is_not_served_from_bytes_changed_after_a_verification() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &b,
            &bundled_digest(&b, &reg.image("sample/hello:1.0")),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = blob_path(&b, &layer);
    let served = Served::start(&b, &[]);
    let url = served.url(&format!("/v2/sample/hello/blobs/{layer}"));
    let whole = curl("GET", &url, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(sha256(&whole.body), layer);
    let first = curl("GET", &url, &["Range: bytes=0-9"]);
    assert_eq!((first.status, &first.body[..]), (206, &whole.body[..10]));

    // The same size and mtime: only ctime tells the file changed.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(b"CHANGED!!!", 0).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);

    let after = curl("GET", &url, &["Range: bytes=0-9"]);
    assert_ne!(
        &after.body[..],
        b"CHANGED!!!",
        "changed bytes were served unchecked (status {})",
        after.status
    );
    assert_eq!(after.status, 404, "the blob is refused once found wrong");
    assert!(served.log().contains("digest mismatch"), "{}", served.log());
}
