//! Nothing to do is not success: an empty image list exits 2 and creates nothing; a run in
//! which every image failed removes the folder it created (and only that: a folder that was
//! there before, and a bundle with images, stay as they were). Real docker-registry.

use crate::common;

use common::*;

#[test]
fn an_empty_list_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(&list, "# nothing yet\n\n").unwrap();
    let out = dir.path().join("b");
    let o = out.to_str().unwrap();
    for args in [
        vec!["bundle", "-o", o, "-f", list.to_str().unwrap()],
        vec![
            "bundle",
            "-o",
            o,
            "docker.io/library/alpine:3.20",
            "--exclude",
            "alpine",
        ],
    ] {
        let (code, _, stderr) = ferry_out(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("no images"), "{stderr}");
        assert!(!out.exists(), "{args:?}: nothing created");
    }
}

#[test]
fn a_run_where_every_image_failed_removes_only_the_folder_it_created() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let nope = [reg.image("sample/nope:1"), reg.image("sample/gone:2")];
    let run_on = |out: &std::path::Path, refs: &[String]| {
        let mut args = vec!["bundle", "-o", out.to_str().unwrap()];
        args.extend(refs.iter().map(String::as_str));
        ferry_out(&args)
    };

    // A new folder: removed.
    let fresh = dir.path().join("fresh");
    let (code, _, stderr) = run_on(&fresh, &nope);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        !fresh.exists(),
        "the folder this run created is gone: {stderr}"
    );
    assert!(stderr.contains("removed"), "{stderr}");
    let (code, stdout, _) =
        ferry_out(&["bundle", "--json", "-o", fresh.to_str().unwrap(), &nope[0]]);
    assert_eq!(code, 1);
    assert!(!fresh.exists());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);

    // An empty folder that was there before: kept.
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let (code, _, stderr) = run_on(&existing, &nope);
    assert_eq!(code, 1, "{stderr}");
    assert!(existing.is_dir(), "a folder that existed is never removed");

    // A bundle with images: unchanged but for nothing.
    let bundle = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    let index = std::fs::read(bundle.join("index.json")).unwrap();
    let (code, _, stderr) = run_on(&bundle, &nope);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(std::fs::read(bundle.join("index.json")).unwrap(), index);
    assert_eq!(ferry_out(&["verify", bundle.to_str().unwrap()]).0, 0);

    // One image of two made it: the new folder stays, with it.
    let half = dir.path().join("half");
    let (code, _, stderr) = run_on(&half, &[reg.image("sample/hello:1.0"), nope[0].clone()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(index_entry(&half, &reg.image("sample/hello:1.0")).is_some());
}
