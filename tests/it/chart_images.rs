//! `ferry images --from-chart` and `bundle --chart ... --with-chart-images` (#23.3): the images
//! a chart names without rendering, from a Bitnami-style chart made by python (not ferry).

use crate::common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// What testdata/push_artifacts.py's chart names: in `artifacthub.io/images` and values.yaml
/// (Bitnami registry/repository/tag maps, one plain `image:` string), written out by hand, in
/// the order `ferry images` sorts (by repository, then tag).
const CHART_IMAGES: [&str; 3] = [
    "docker.io/bitnami/nginx:1.27.0-debian-12-r1",
    "docker.io/bitnami/nginx-exporter:1.3.0",
    "quay.io/prometheus/busybox:latest",
];

/// A chart whose values name `images` in the Bitnami layout, packed by python's tarfile.
fn make_chart(dir: &Path, name: &str, images: &[(&str, &str, &str)]) {
    let mut values = String::new();
    for (i, (registry, repository, tag)) in images.iter().enumerate() {
        values += &format!(
            "c{i}:\n  image:\n    registry: {registry}\n    repository: {repository}\n    tag: \"{tag}\"\n"
        );
    }
    let script = r#"
import gzip, io, sys, tarfile
out, name, values = sys.argv[1:4]
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as tar:
    for path, text in [(f"{name}/Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
                       (f"{name}/values.yaml", values)]:
        data = text.encode()
        info = tarfile.TarInfo(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
open(out, "wb").write(gzip.compress(raw.getvalue(), mtime=0))
"#;
    run(Command::new("python3")
        .args(["-c", script])
        .arg(dir.join(format!("{name}-1.0.0.tgz")))
        .arg(name)
        .arg(values));
}

#[test]
fn images_from_a_bitnami_style_chart_file_and_registry() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let fx = dir.path().join("fx");
    push_artifacts(&reg, &fx);
    let tgz = fx.join("mychart-0.1.0.tgz");
    let (code, stdout, stderr) = ferry_out(&["images", "--from-chart", tgz.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), CHART_IMAGES);
    assert!(
        stderr.contains("helm template") && stderr.contains("--from-manifests -"),
        "the recipe for what needs rendering: {stderr}"
    );
    let oci = format!("oci://{}", reg.image("charts/mychart:0.1.0"));
    let (code, stdout, stderr) = ferry_out(&["images", "--from-chart", &oci, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["references"], serde_json::json!(CHART_IMAGES));
    // Not a chart: said, exit non-zero.
    let (code, _, stderr) = ferry_out(&["images", "--from-chart", &reg.image("files/model:v1")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not a Helm chart"), "{stderr}");
    let (code, _, stderr) = ferry_out(&[
        "images",
        "--from-chart",
        fx.join("model.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn bundle_with_chart_images_adds_what_the_chart_names() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let charts = dir.path().join("charts");
    std::fs::create_dir(&charts).unwrap();
    make_chart(
        &charts,
        "app",
        &[
            (&reg.addr, "sample/hello", "1.0"),
            (&reg.addr, "sample/world", "1.0"),
        ],
    );
    let mut server = Command::new("python3")
        .arg(root().join("testdata/helm_repo.py"))
        .arg(&charts)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let spec = format!("http://{}/app:1.0.0", addr.trim());
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "-o",
        b.to_str().unwrap(),
        "--chart",
        &spec,
        "--with-chart-images",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{stderr}");
    let mut want = vec![
        format!("{}/app:1.0.0", addr.trim()),
        reg.image("sample/hello:1.0"),
        reg.image("sample/world:1.0"),
    ];
    want.sort();
    let mut got = index_names(&b);
    got.sort();
    assert_eq!(got, want);
}
