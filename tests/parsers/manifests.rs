//! Manifests and indexes as registries serve them (OCI and Docker schema2).

use ferry::manifest::{
    DOCKER_LIST, DOCKER_MANIFEST, Manifest, OCI_INDEX, OCI_MANIFEST, descriptor_digest,
    descriptor_platform,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::digests::valid_digest;
use crate::grammar::{MEDIA_TYPE, PLATFORM, REGISTERED_DIGEST};

fn descriptor(media_type: &str, digest: String, size: u64) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

fn image_manifest() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![OCI_MANIFEST, DOCKER_MANIFEST]),
        valid_digest(),
        prop::collection::vec((valid_digest(), 0u64..1 << 40), 0..4),
    )
        .prop_map(|(mt, config, layers)| {
            json!({
                "schemaVersion": 2,
                "mediaType": mt,
                "config": descriptor("application/vnd.oci.image.config.v1+json", config, 7),
                "layers": layers.into_iter()
                    .map(|(d, s)| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", d, s))
                    .collect::<Vec<_>>(),
            })
        })
}

/// A platform object as registries write it: plausible parts, hostile ones now and then.
fn platform_json() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        4 => "[a-z0-9]{1,8}",
        1 => "[A-Za-z0-9_]{0,4}[\n \"/\u{e9}]?[a-z]{0,3}",
    ];
    (part.clone(), part.clone(), prop::option::of(part)).prop_map(|(os, arch, v)| match v {
        Some(v) => json!({"os": os, "architecture": arch, "variant": v}),
        None => json!({"os": os, "architecture": arch}),
    })
}

fn index() -> impl Strategy<Value = Value> {
    let entry = (
        valid_digest(),
        1u64..1 << 20,
        prop::option::of(platform_json()),
    )
        .prop_map(|(d, s, p)| {
            let mut e = descriptor(OCI_MANIFEST, d, s);
            if let Some(p) = p {
                e["platform"] = p;
            }
            e
        });
    (
        prop::sample::select(vec![OCI_INDEX, DOCKER_LIST]),
        prop::collection::vec(entry, 0..5),
    )
        .prop_map(
            |(mt, manifests)| json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests}),
        )
}

/// A valid manifest with one value replaced by something else (a string, a number, null).
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![image_manifest(), index()],
        prop::sample::select(vec![
            "mediaType",
            "schemaVersion",
            "config",
            "layers",
            "manifests",
        ]),
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(json!([{"digest": "sha256:00", "size": -1}])),
            Just(json!({"mediaType": "a\nb"})),
        ],
    )
        .prop_map(|(mut m, key, v)| {
            m[key] = v;
            serde_json::to_vec(&m).unwrap()
        })
}

fn mixed_manifest() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop_oneof![image_manifest(), index()].prop_map(|m| serde_json::to_vec(&m).unwrap()),
        mutated(),
        any::<String>().prop_map(String::into_bytes),
    ]
}

#[test]
fn the_mixed_input_holds_valid_and_invalid_manifests() {
    let share = crate::accepted_share(mixed_manifest(), |b| Manifest::parse(b, None).is_ok());
    crate::assert_mixed("manifests", share);
}

proptest! {
    #![proptest_config(crate::config())]

    /// Never panics; what it takes has a media type in RFC 6838's grammar.
    #[test]
    fn never_panics(
        bytes in mixed_manifest(),
        content_type in prop::option::of(any::<String>()),
    ) {
        match Manifest::parse(&bytes, content_type.as_deref()) {
            Ok((_, media_type)) => prop_assert!(MEDIA_TYPE.is_match(&media_type), "{media_type:?}"),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn image_manifests_parse(m in image_manifest(), header in prop::option::of("[a-z/.+; =-]{0,30}")) {
        let bytes = serde_json::to_vec(&m).unwrap();
        let (parsed, media_type) = Manifest::parse(&bytes, header.as_deref()).unwrap();
        // The JSON's own mediaType wins over the Content-Type header.
        prop_assert_eq!(media_type.as_str(), m["mediaType"].as_str().unwrap());
        let Manifest::Image(image) = parsed else { panic!("not an image") };
        prop_assert_eq!(image.layers().len(), m["layers"].as_array().unwrap().len());
        for (l, want) in image.layers().iter().zip(m["layers"].as_array().unwrap()) {
            prop_assert_eq!(descriptor_digest(l).unwrap().to_string(), want["digest"].as_str().unwrap());
            prop_assert_eq!(l.size(), want["size"].as_u64().unwrap());
        }
    }

    #[test]
    fn indexes_parse_and_platforms_follow_the_grammar(m in index()) {
        let bytes = serde_json::to_vec(&m).unwrap();
        let (parsed, media_type) = Manifest::parse(&bytes, None).unwrap();
        prop_assert_eq!(media_type.as_str(), m["mediaType"].as_str().unwrap());
        let Manifest::Index(index) = parsed else { panic!("not an index") };
        prop_assert_eq!(index.manifests().len(), m["manifests"].as_array().unwrap().len());
        for d in index.manifests() {
            prop_assert!(REGISTERED_DIGEST.is_match(&descriptor_digest(d).unwrap().to_string()));
            if let Ok(Some(p)) = descriptor_platform(d) {
                prop_assert!(PLATFORM.is_match(&p.to_string()), "{p}");
            }
        }
    }

    #[test]
    fn untyped_manifests_take_the_header_or_the_shape(m in prop_oneof![image_manifest(), index()]) {
        let mut m = m;
        let declared = m["mediaType"].as_str().unwrap().to_owned();
        m.as_object_mut().unwrap().remove("mediaType");
        let bytes = serde_json::to_vec(&m).unwrap();
        let with_header = format!("{declared}; charset=utf-8");
        let (_, media_type) = Manifest::parse(&bytes, Some(&with_header)).unwrap();
        prop_assert_eq!(&media_type, &declared);
        let (parsed, media_type) = Manifest::parse(&bytes, Some("application/json")).unwrap();
        let shape = if matches!(parsed, Manifest::Index(_)) { OCI_INDEX } else { OCI_MANIFEST };
        prop_assert_eq!(media_type, shape);
    }
}

#[test]
fn foreign_digest_algorithms_are_refused_per_descriptor() {
    let m = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, format!("sha384:{}", "a".repeat(96)), 3)],
    });
    let (parsed, _) = Manifest::parse(&serde_json::to_vec(&m).unwrap(), None).unwrap();
    let Manifest::Index(index) = parsed else {
        panic!("not an index")
    };
    assert!(descriptor_digest(&index.manifests()[0]).is_err());
}
