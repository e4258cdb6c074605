//! `ferry bundle --add-file PATH --as NAME:TAG` and `ferry export --files DIR` (#23.4): a local
//! file stored as `oras push` stores it, and written back out under its title, checked.

use crate::common;

use std::process::Command;

use common::*;

const EMPTY_CONFIG: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

#[test]
fn a_file_crosses_as_an_oras_style_artifact_and_comes_back_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("licence-pack.bin");
    run(Command::new("sh").arg("-c").arg(format!(
        "head -c 3000000 /dev/urandom > '{}'",
        file.display()
    )));
    let want = sha256(&std::fs::read(&file).unwrap());
    let b = d.join("b");
    let name = "example.com/tools/licence:1";
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "-o",
        b.to_str().unwrap(),
        "--add-file",
        file.to_str().unwrap(),
        "--as",
        name,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let entry = index_entry(&b, name).unwrap();
    assert_eq!(entry["artifactType"], "application/vnd.unknown.artifact.v1");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(&b, entry["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], EMPTY_CONFIG);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["digest"], want.as_str());
    assert_eq!(layer["size"], 3_000_000);
    assert_eq!(
        layer["annotations"]["org.opencontainers.image.title"],
        "licence-pack.bin"
    );
    assert_eq!(sha256(&std::fs::read(blob_path(&b, &want)).unwrap()), want);
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, _) = ferry_out(&["ls", b.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("artifact (application/vnd.unknown.artifact.v1)"),
        "{stdout}"
    );

    // Out again, byte for byte, under its title.
    let out = d.join("out");
    let (code, _, stderr) = ferry_out(&[
        "export",
        "--files",
        out.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        sha256(&std::fs::read(out.join("licence-pack.bin")).unwrap()),
        want
    );

    // A damaged blob: export fails and leaves no file behind.
    let blob = blob_path(&b, &want);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1_000_000] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let again = d.join("again");
    let (code, _, stderr) = ferry_out(&[
        "export",
        "--files",
        again.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&again)
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // Each --add-file needs its --as.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--add-file",
        file.to_str().unwrap(),
        "--add-file",
        file.to_str().unwrap(),
        "--as",
        name,
    ]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn export_files_takes_an_oras_pushed_artifact() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let fx = dir.path().join("fx");
    push_artifacts(&reg, &fx);
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "-o",
        b.to_str().unwrap(),
        &reg.image("files/model:v1"),
        &reg.image("charts/mychart:0.1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("out");
    let (code, _, stderr) = ferry_out(&[
        "export",
        "--files",
        out.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read(out.join("model.bin")).unwrap(),
        std::fs::read(fx.join("model.bin")).unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["model.bin"], "a chart is no titled file");
}
