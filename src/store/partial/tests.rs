use super::*;
use crate::digest::Algorithm;

fn layout() -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_for_write(dir.path()).unwrap();
    (dir, layout)
}

fn hashed(data: &[u8]) -> Hasher {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(data);
    h
}

#[test]
fn one_stream_resumes_from_the_file_length_and_lands() {
    let (_dir, layout) = layout();
    let data = b"0123456789abcdef".repeat(1000);
    let (digest, size) = (Digest::sha256_of(&data), data.len() as u64);
    let mut p = layout.partial_download(&digest, size).unwrap();
    assert_eq!(
        p.parts(),
        [Part {
            start: 0,
            end: size,
            done: 0
        }]
    );
    assert_eq!(p.write(0, &data[..5000]).unwrap(), 0);
    drop(p);
    assert_eq!(layout.partial_len(&digest, size), 5000);
    let mut p = layout.partial_download(&digest, size).unwrap();
    assert_eq!((p.contiguous(), p.bytes_done()), (5000, 5000));
    assert_eq!(p.write(0, &data[5000..]).unwrap(), 5000);
    assert!(p.write(0, b"x").is_err(), "never past the part's end");
    assert!(p.finish(hashed(&data), false).unwrap().is_none());
    assert_eq!(layout.read_blob(&digest).unwrap(), data);
    assert_eq!(layout.partial_len(&digest, size), 0);
}

#[test]
fn a_staged_download_dropped_unlanded_is_kept_and_wrong_content_is_discarded() {
    let (_dir, layout) = layout();
    let digest = Digest::sha256_of(b"partial");
    let mut p = layout.partial_download(&digest, 7).unwrap();
    p.write(0, b"partial").unwrap();
    drop(p.finish(hashed(b"partial"), true).unwrap().unwrap());
    assert!(!layout.has_blob(&digest, 7));
    assert_eq!(layout.partial_len(&digest, 7), 7);

    let wrong = layout.partial_download(&digest, 7).unwrap();
    assert_eq!(wrong.contiguous(), 7);
    assert!(matches!(
        wrong.finish(hashed(b"wrongly"), false),
        Err(StoreError::Mismatch { .. })
    ));
    assert_eq!(layout.partial_download(&digest, 7).unwrap().contiguous(), 0);
}

#[test]
fn a_file_longer_than_the_blob_is_started_over() {
    let (_dir, layout) = layout();
    let digest = Digest::sha256_of(b"abc");
    fs::write(layout.partial_path(&digest), b"abcdef").unwrap();
    assert_eq!(layout.partial_len(&digest, 3), 0);
    let mut p = layout.partial_download(&digest, 3).unwrap();
    assert_eq!(p.contiguous(), 0);
    p.write(0, b"abc").unwrap();
    p.finish(hashed(b"abc"), false).unwrap();
}

#[test]
fn parts_tile_the_blob_at_mib_boundaries_and_keep_the_prefix() {
    const M: u64 = 1 << 20;
    let ends = |parts: &[Part]| parts.iter().map(|p| p.end / M).collect::<Vec<_>>();
    // 8 MiB parts at least; a quarter of each connection's share; 64 MiB at most.
    assert_eq!(ends(&plan_parts(40 * M, 0, 4)), [8, 16, 24, 32, 40]);
    assert_eq!(ends(&plan_parts(256 * M, 0, 4)).len(), 16);
    assert_eq!(plan_parts(4096 * M, 0, 4)[0].end, 64 * M);
    assert_eq!(plan_parts(4096 * M, 0, 4).len(), 64);
    let resumed = plan_parts(100 * M, 10 * M, 4);
    assert_eq!(ends(&resumed)[..3], [18, 26, 34]);
    assert_eq!(resumed[0].done, 10 * M);
    assert!(resumed[1..].iter().all(|p| p.done == 0));
    assert_eq!(
        plan_parts(100, 0, 4),
        [Part {
            start: 0,
            end: 100,
            done: 0
        }]
    );
    assert_eq!(plan_parts(100 * M, 100 * M, 4).len(), 1);
    // A blob past 64 GiB gets a 1024th of it per part, never more parts.
    assert!(plan_parts(200 << 30, 0, 8).len() <= MAX_PARTS);
    for (size, prefix, n) in [(7 * M + 3, 0, 3), (640 * M, 5, 64), (M + 1, M, 9)] {
        let parts = plan_parts(size, prefix, n);
        assert!(parts[0].start == 0 && parts.last().unwrap().end == size);
        assert!(
            parts
                .windows(2)
                .all(|w| w[0].end == w[1].start && w[0].start < w[0].end)
        );
    }
}

#[test]
fn parts_resume_from_their_record_and_collapse_to_the_prefix() {
    let (_dir, layout) = layout();
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let (digest, size) = (Digest::sha256_of(&data), data.len() as u64);
    let mut p = layout.partial_download(&digest, size).unwrap();
    let parts: Vec<Part> = (0..4)
        .map(|i| Part {
            start: i << 20,
            end: (i + 1) << 20,
            done: 0,
        })
        .collect();
    p.split(parts.clone(), Some("\"sha256:etag\"".into()))
        .unwrap();
    // Part 0 whole, part 2 half, parts 1 and 3 a little.
    p.write(0, &data[..1 << 20]).unwrap();
    p.write(2, &data[2 << 20..(5 << 19)]).unwrap();
    p.write(1, &data[1 << 20..(1 << 20) + 10]).unwrap();
    p.write(3, &data[3 << 20..(3 << 20) + 7]).unwrap();
    p.note_progress().unwrap();
    drop(p);
    let done = (1 << 20) + (1 << 19) + 10 + 7;
    assert_eq!(layout.partial_len(&digest, size), done);

    let mut p = layout.partial_download(&digest, size).unwrap();
    assert_eq!(p.etag(), Some("\"sha256:etag\""));
    let dones: Vec<u64> = p.parts().iter().map(|q| q.done).collect();
    assert_eq!(dones, [1 << 20, 10, 1 << 19, 7]);
    assert_eq!((p.contiguous(), p.bytes_done()), ((1 << 20) + 10, done));
    // Back to one stream: everything past the prefix goes, and the record with it.
    assert_eq!(p.collapse().unwrap(), (1 << 20) + 10);
    drop(p);
    let mut p = layout.partial_download(&digest, size).unwrap();
    assert_eq!(p.parts().len(), 1);
    assert_eq!(p.contiguous(), (1 << 20) + 10);
    p.write(0, &data[(1 << 20) + 10..]).unwrap();
    p.finish(hashed(&data), false).unwrap();
    assert!(layout.open_blob(&digest, Some(size)).is_ok());
    assert_eq!(fs::read_dir(layout.partial_dir()).unwrap().count(), 0);
}

#[test]
fn a_record_that_does_not_hold_up_starts_the_blob_over() {
    let (dir, layout) = layout();
    let size = 3u64 << 20;
    let digest = Digest::sha256_of(b"some blob");
    let data_path = layout.partial_path(&digest);
    let record = record_path(&data_path);
    let thirds: Vec<Part> = (0..3)
        .map(|i| Part {
            start: i << 20,
            end: (i + 1) << 20,
            done: 0,
        })
        .collect();
    let good = Record::text(size, None, &thirds).0;
    let outside = dir.path().join("outside");
    fs::write(&outside, &good).unwrap();
    let gapped = good.replacen(
        &format!("{:020} {:020}", 1u64 << 20, 2u64 << 20),
        &format!("{:020} {:020}", 1u64 << 20, 1u64 << 19),
        1,
    );
    let claims_too_much = good.replacen(
        &format!("{:020} {:020} {:020}", 0, 1u64 << 20, 0),
        &format!("{:020} {:020} {:020}", 0, 1u64 << 20, 2u64 << 20),
        1,
    );
    let hostile = [
        "garbage".to_owned(),
        good.replace("size 0", "size 9"),
        gapped,
        claims_too_much,
        good.replace("etag -", "etag zz"),
        good.replacen(" 0000", " +000", 1),
        good.clone() + "x",
    ];
    for text in hostile {
        fs::write(&data_path, vec![1u8; 1 << 20]).unwrap();
        fs::write(&record, &text).unwrap();
        assert_eq!(layout.partial_len(&digest, size), 1 << 20, "{text}");
        let p = layout.partial_download(&digest, size).unwrap();
        assert_eq!((p.parts().len(), p.bytes_done()), (1, 0), "{text}");
        assert!(!record.exists());
    }
    // A link planted at the record's name is removed, never followed.
    fs::write(&data_path, vec![1u8; 10]).unwrap();
    std::os::unix::fs::symlink(&outside, &record).unwrap();
    let p = layout.partial_download(&digest, size).unwrap();
    assert_eq!(p.bytes_done(), 0);
    assert!(record.symlink_metadata().is_err());
    assert_eq!(fs::read_to_string(&outside).unwrap(), good);
    // A record claiming bytes past the data file's end is cut back to the file.
    drop(p);
    let mut p = layout.partial_download(&digest, size).unwrap();
    p.split(thirds, None).unwrap();
    p.write(1, &[2u8; 100]).unwrap();
    p.note_progress().unwrap();
    drop(p);
    fs::OpenOptions::new()
        .write(true)
        .open(&data_path)
        .unwrap()
        .set_len((1 << 20) + 40)
        .unwrap();
    let p = layout.partial_download(&digest, size).unwrap();
    assert_eq!(p.parts()[1].done, 40);
}
