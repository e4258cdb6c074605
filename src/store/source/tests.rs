//! The sources against archives made here with the `tar` crate and the `zstd` stream encoder
//! (not ferry's writer), and against a folder changed on disk.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::*;
use crate::digest::Digest;

const BLOB: &[u8] = b"hello world";

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// A tar of a one-blob bundle, with extra members added by `more`.
fn tar_bytes(more: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, Digest) {
    let digest = Digest::sha256_of(BLOB);
    let mut t = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        t.append_data(&mut header(data.len() as u64), name, data)
            .unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    add("ferry.lock", br#"{"lockVersion":1,"images":[]}"#);
    add(&format!("./blobs/sha256/{}", digest.hex()), BLOB);
    more(&mut t);
    (t.into_inner().unwrap(), digest)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn seekable(plain: &[u8]) -> Vec<u8> {
    let mut w = SeekableWriter::new(Vec::new(), 2);
    // Small frames: the blob's bytes span several.
    for chunk in plain.chunks(700) {
        w.write_all(chunk).unwrap();
        w.flush().unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn every_kind_of_archive_reads_the_same_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, digest) = tar_bytes(|_| {});
    let stream = zstd::stream::encode_all(&plain[..], 3).unwrap();
    let kinds = [
        ("b.tar", plain.clone(), SourceKind::Tar),
        ("b.tar.zst", seekable(&plain), SourceKind::SeekableZst),
        ("s.tar.zst", stream, SourceKind::StreamZst),
    ];
    for (name, bytes, kind) in kinds {
        let src = open(&write(dir.path(), name, &bytes)).unwrap();
        assert_eq!(src.kind(), kind, "{name}");
        assert!(src.index().unwrap().is_empty());
        assert!(src.lock().unwrap().is_some());
        assert_eq!(src.root_file(SCRIPT_FILE, 100).unwrap(), None);
        assert_eq!(src.blobs().unwrap(), vec![(digest.clone(), 11)]);
        let blob = src.open_blob(&digest, Some(11)).unwrap();
        assert_eq!(blob.read_verified(100).unwrap(), BLOB, "{name}");
        let mut part = String::new();
        blob.range_reader(6, 11)
            .unwrap()
            .read_to_string(&mut part)
            .unwrap();
        assert_eq!(part, "world", "{name}");
        assert!(matches!(
            src.open_blob(&digest, Some(12)),
            Err(StoreError::Mismatch { .. })
        ));
    }
    // `zstd -d` reads the seekable file as one stream.
    let (plain, _) = tar_bytes(|_| {});
    assert_eq!(
        zstd::stream::decode_all(&seekable(&plain)[..]).unwrap(),
        plain
    );
}

#[test]
fn members_that_escape_or_are_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let link = Digest::sha256_of(b"elsewhere");
    let (bytes, _) = tar_bytes(|t| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        t.append_link(
            &mut h,
            format!("blobs/sha256/{}", link.hex()),
            "/etc/passwd",
        )
        .unwrap();
    });
    let src = open(&write(dir.path(), "l.tar", &bytes)).unwrap();
    assert_eq!(src.blob_stat(&link), BlobStat::NotAFile("a symlink"));
    assert!(matches!(
        src.open_blob(&link, None),
        Err(StoreError::NotARegularFile { .. })
    ));
    for evil in ["../outside", "/etc/cron.d/x"] {
        let (mut bytes, _) = tar_bytes(|_| {});
        // The tar crate refuses to write these names: patch one into a header by hand.
        let mut h = header(1);
        let name = h.as_old_mut().name.as_mut();
        name.fill(0);
        name[..evil.len()].copy_from_slice(evil.as_bytes());
        h.set_cksum();
        let end = bytes.len() - 1024;
        bytes.truncate(end);
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0; 1024]);
        let e = open(&write(dir.path(), "e.tar", &bytes)).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{evil}: {e}");
    }
}

#[test]
fn compressed_and_foreign_files_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let gz = write(dir.path(), "b.tar.gz", b"\x1f\x8b\x08\x00rest");
    let e = open(&gz).unwrap_err();
    use crate::error::Diagnostic;
    assert!(e.to_string().contains("gzip"), "{e}");
    assert!(e.hint().unwrap_or_default().contains("decompress"));
    let text = write(dir.path(), "notes.txt", &[b'a'; 2048]);
    let e = open(&text).unwrap_err();
    assert!(matches!(e, StoreError::NotALayout { .. }), "{e}");
    assert!(!e.to_string().contains("no such folder"), "{e}");
}

#[test]
fn a_whole_read_of_a_wrong_blob_never_hands_out_its_last_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_for_write(dir.path()).unwrap();
    let content = vec![7u8; 200 * 1024];
    let digest = Digest::sha256_of(&content);
    layout.put_blob(&digest, &content).unwrap();
    let mut bad = content.clone();
    *bad.last_mut().unwrap() = 8;
    fs::write(layout.blob_path(&digest), &bad).unwrap();
    let blob = BundleSource::open_blob(&layout, &digest, None).unwrap();
    let mut reader = blob.reader().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let err = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("a wrong blob read to its end"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        got.len() <= content.len() - 64 * 1024,
        "{} bytes handed out",
        got.len()
    );
}

#[test]
fn a_range_is_not_served_from_bytes_changed_after_verification() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_for_write(dir.path()).unwrap();
    let content = b"0123456789abcdef".repeat(1000);
    let digest = Digest::sha256_of(&content);
    layout.put_blob(&digest, &content).unwrap();
    let src: &dyn BundleSource = &layout;
    let blob = src.open_blob(&digest, None).unwrap();
    blob.verify().unwrap();
    assert!(blob.is_verified());
    // Same size, same mtime: only the content (and so ctime) changes, in place.
    let path = layout.blob_path(&digest);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"XXXX", 100).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let again = src.open_blob(&digest, None).unwrap();
    assert!(!again.is_verified(), "a changed file is not trusted");
    assert!(matches!(
        again.range_reader(96, 110),
        Err(StoreError::Mismatch { .. })
    ));
    // A reader opened on a verified blob is cut when the file changes under it.
    let mut good = Vec::new();
    let other = content.iter().map(|b| b ^ 1).collect::<Vec<u8>>();
    let d2 = Digest::sha256_of(&other);
    layout.put_blob(&d2, &other).unwrap();
    let b2 = src.open_blob(&d2, None).unwrap();
    let mut r = b2.range_reader(0, 16000).unwrap();
    let mut first = [0u8; 100];
    r.read_exact(&mut first).unwrap();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(layout.blob_path(&d2))
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"Y", 5000).unwrap();
    let e = r.read_to_end(&mut good).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
}

#[test]
fn a_folder_being_written_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Layout::open_for_write(dir.path()).unwrap();
    assert!(matches!(open(dir.path()), Err(StoreError::Busy(_))));
    drop(writer);
    open(dir.path()).unwrap();
    let _ = File::open(dir.path());
}

#[test]
fn the_seekable_bytes_do_not_depend_on_the_number_of_threads() {
    let data: Vec<u8> = (0..(9 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let write = |threads| {
        let mut w = SeekableWriter::new(Vec::new(), threads);
        w.write_all(&data[..1000]).unwrap();
        w.flush().unwrap();
        w.write_all(&data[1000..]).unwrap();
        w.finish().unwrap()
    };
    let one = write(1);
    assert_eq!(one, write(4));
    assert_eq!(zstd::stream::decode_all(&one[..]).unwrap(), data);
    // 1000 bytes, then 9 MiB - 1000 in frames of at most 4 MiB: 4 frames.
    let table = zeekstd::SeekTable::from_seekable(&mut std::io::Cursor::new(&one)).unwrap();
    assert_eq!(table.num_frames(), 4);
}
