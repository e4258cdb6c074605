//! Charts from classic Helm repositories and local files in ferry.lock (#23): `bundle --chart`
//! records where the chart came from (the repository, name, version and the `.tgz` digest
//! index.yaml gives), `bundle --lock` fetches it again from there and refuses, by name, a
//! version republished with another `.tgz`; a local file is recorded as one, and `bundle --lock`
//! names it unless `--add-file` gives it back. The repository is testdata/helm_repo.py (it
//! re-indexes its folder at each GET of index.yaml, as a republishing repository would).

use crate::charts::{HelmRepo, Setup, bundle};
use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

const FILE_REF: &str = "registry.example/tools/licence:1";

/// `bundle` of `args` with `file` stored as FILE_REF.
fn with_file(out: &Path, args: &[&str], file: &Path) -> (i32, String) {
    let mut all = args.to_vec();
    all.extend(["--add-file", file.to_str().unwrap(), "--as", FILE_REF]);
    bundle(out, &all)
}

fn lock_entry(bundle: &Path, reference: &str) -> serde_json::Value {
    lock_entry_in(&bundle.join("ferry.lock"), reference)
}

fn lock_entry_in(lock: &Path, reference: &str) -> serde_json::Value {
    let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(lock).unwrap()).unwrap();
    lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} in {lock}"))
        .clone()
}

fn digest_of(bundle: &Path, reference: &str) -> String {
    let entry = index_entry(bundle, reference).unwrap_or_else(|| panic!("{reference}"));
    entry["digest"].as_str().unwrap().to_owned()
}

#[test]
fn a_locked_chart_is_fetched_again_from_its_repository_with_the_same_digest() {
    let s = Setup::new();
    let repo = HelmRepo::start(&s.path("charts"), None);
    let spec = format!("http://{}/mychart:0.1.0", repo.addr);
    let chart = format!("{}/mychart:0.1.0", repo.addr);
    let licence = s.path("LICENCE.txt");
    std::fs::write(&licence, "the licence, crossing with the chart\n").unwrap();
    let first = s.path("first");
    let (code, stderr) = with_file(&first, &["--chart", &spec], &licence);
    assert_eq!(code, 0, "{stderr}");

    // The lock says where each came from; the .tgz digest is sha256sum's word on the file.
    let entry = lock_entry(&first, &chart);
    assert_eq!(entry["digest"], digest_of(&first, &chart));
    let source = &entry["source"];
    assert_eq!(source["kind"], "helmRepository", "{entry}");
    assert_eq!(source["repository"], format!("http://{}", repo.addr));
    assert_eq!(source["chart"], "mychart");
    assert_eq!(source["version"], "0.1.0");
    assert_eq!(source["chartDigest"], sha256(&s.tgz()));
    let file = lock_entry(&first, FILE_REF);
    assert_eq!(file["source"]["kind"], "localFile", "{file}");
    assert_eq!(file["source"]["title"], "LICENCE.txt");

    // `ferry lock` of a list file's chart line writes the same entry.
    let list = s.path("list.txt");
    std::fs::write(&list, format!("{spec}\n")).unwrap();
    let locked = s.path("locked.json");
    let (code, _, stderr) = ferry_out(&[
        "lock",
        "-f",
        list.to_str().unwrap(),
        "-o",
        locked.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lock_entry_in(&locked, &chart), entry);

    // The lock alone: the chart comes back with the same digest; the file is named, not dropped.
    let lock = first.join("ferry.lock");
    let again = s.path("again");
    let (code, stderr) = bundle(&again, &["--lock", lock.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(FILE_REF) && stderr.contains("a lock cannot fetch it again"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--add-file PATH --as {FILE_REF}")),
        "{stderr}"
    );
    assert_eq!(index_names(&again), std::slice::from_ref(&chart));
    assert_eq!(digest_of(&again, &chart), digest_of(&first, &chart));

    // With the file given back: the same bundle, entry for entry.
    let whole = s.path("whole");
    let (code, stderr) = with_file(&whole, &["--lock", lock.to_str().unwrap()], &licence);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read(whole.join("index.json")).unwrap(),
        std::fs::read(first.join("index.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(whole.join("ferry.lock")).unwrap(),
        std::fs::read(first.join("ferry.lock")).unwrap()
    );

    // Another file under the locked name is not what the lock records: refused by name.
    std::fs::write(&licence, "another licence\n").unwrap();
    let other = s.path("other");
    let (code, stderr) = with_file(&other, &["--lock", lock.to_str().unwrap()], &licence);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{FILE_REF}: the lock file says")),
        "{stderr}"
    );
    assert_eq!(index_names(&other), [chart]);
}

#[test]
fn a_chart_republished_under_its_version_is_refused_by_name_and_the_bundle_keeps_it() {
    let s = Setup::new();
    let repo = HelmRepo::start(&s.path("charts"), None);
    let spec = format!("http://{}/mychart:0.1.0", repo.addr);
    let chart = format!("{}/mychart:0.1.0", repo.addr);
    let b = s.path("b");
    let (code, stderr) = bundle(&b, &["--chart", &spec]);
    assert_eq!(code, 0, "{stderr}");
    let before = digest_of(&b, &chart);
    let layer = sha256(&s.tgz());
    let lock = s.path("ferry.lock");
    std::fs::copy(b.join("ferry.lock"), &lock).unwrap();

    // The repository republishes 0.1.0 with one more file, packed by tar (not ferry).
    let work = s.path("work");
    std::fs::create_dir(&work).unwrap();
    let tgz = s.path("charts/mychart-0.1.0.tgz");
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(&work));
    let top = std::fs::read_dir(&work).unwrap().next().unwrap().unwrap();
    std::fs::write(top.path().join("NOTES.txt"), "republished\n").unwrap();
    run(Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&work)
        .arg(top.file_name()));
    let republished = sha256(&std::fs::read(&tgz).unwrap());
    assert_ne!(republished, layer);

    // --locked: said as drift, before anything is fetched.
    let (code, stderr) = bundle(&b, &["--lock", lock.to_str().unwrap(), "--locked"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the lock file is out of date")
            && stderr.contains(&format!(
                "{chart}: locked .tgz {layer}, {spec} now gives {republished}"
            )),
        "{stderr}"
    );
    let (code, stderr) = bundle(&b, &["--lock", lock.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{chart}: {spec}: the repository now serves {republished} for this version, the lock file says {layer}"
        )),
        "{stderr}"
    );
    // Nothing lost: the chart as it was, its .tgz byte for byte, a bundle that verifies.
    assert_eq!(index_names(&b), std::slice::from_ref(&chart));
    assert_eq!(digest_of(&b, &chart), before);
    assert_eq!(std::fs::read(blob_path(&b, &layer)).unwrap(), s.tgz());
    assert!(
        !blob_path(&b, &republished).exists(),
        "no byte of the new .tgz"
    );
    assert_eq!(
        lock_entry(&b, &chart)["source"]["chartDigest"],
        layer,
        "the lock unchanged"
    );
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
