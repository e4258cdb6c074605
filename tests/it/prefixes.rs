//! One reading of a reference prefix: `--exclude` names Docker Hub by any of its names, as a
//! mirror rule and a reference do (registry-1.docker.io and index.docker.io are docker.io).

use crate::common;

use common::*;

#[test]
fn exclude_by_any_name_of_docker_hub_drops_the_image() {
    let list = run_dir().join(format!("prefixes-{}.txt", std::process::id()));
    std::fs::write(&list, "alpine:3.20\nbusybox:1.36\nquay.io/org/app:1\n").unwrap();
    let list = list.to_str().unwrap();
    for prefix in [
        "registry-1.docker.io/library/alpine",
        "index.docker.io/library/alpine",
        "docker.io/library/alpine",
        "alpine",
    ] {
        let (code, stdout, stderr) = ferry_out(&["images", "-f", list, "--exclude", prefix]);
        assert_eq!(code, 0, "{prefix}: {stderr}");
        let kept: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            kept,
            ["docker.io/library/busybox:1.36", "quay.io/org/app:1"],
            "--exclude {prefix}"
        );
    }
}
