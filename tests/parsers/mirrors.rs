//! `--mirror SOURCE=MIRROR` locations, and the containerd `hosts.toml` and registries.conf
//! drop-ins ferry writes for nodes (whatever the strings, the files stay TOML with exactly
//! the keys ferry meant).

use ferry::node::mirror_config::{Mirror, hosts_toml, registries_conf};
use ferry::registry::Mirrors;
use proptest::prelude::*;

use crate::grammar::LOCATION;

fn location() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}(?:\\.[a-z0-9]{1,8}){0,2}(?::[1-9][0-9]{0,3})?(?:/[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4})?){0,2}"
}

fn near_location() -> impl Strategy<Value = String> {
    prop_oneof![
        location(),
        "[a-zA-Z0-9.:/@+\\[\\]_-]{0,30}",
        "[a-z.]{1,8}:[+ -]?[0-9]{1,6}",
        "[a-z.]{1,8}[\n \"'\u{e9}]?[a-z./]{0,8}",
    ]
}

/// Any text, with the characters that would break a TOML line or a shell line likelier.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z:/.\n\r\"'\\\\\\[\\]#= ]{0,30}"]
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn mirror_flags_accept_only_locations(source in near_location(), mirror in near_location()) {
        let mut m = Mirrors::default();
        if m.add_flag(&format!("{source}={mirror}")).is_ok() {
            for side in [&source, &mirror] {
                let side = side.trim_end_matches('/');
                prop_assert!(LOCATION.is_match(side), "{side:?}");
            }
        }
    }

    #[test]
    fn valid_mirror_flags_are_accepted(source in location(), mirror in location()) {
        let mut m = Mirrors::default();
        prop_assert!(m.add_flag(&format!("{source}={mirror}")).is_ok(), "{source}={mirror}");
    }

    #[test]
    fn hosts_toml_stays_toml(source in hostile(), origin in hostile(), namespace in hostile(), ca in hostile()) {
        let mirror = Mirror {
            origin,
            namespace,
            ca_file: Some(ca.clone().into()),
            skip_verify: true,
        };
        let text = hosts_toml(&source, std::slice::from_ref(&mirror));
        let table: toml::Table = text.parse().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let keys: Vec<&str> = table.keys().map(String::as_str).collect();
        prop_assert_eq!(keys, ["host", "server"], "{}", text);
        let hosts = table["host"].as_table().unwrap();
        prop_assert_eq!(hosts.len(), 1, "{}", text);
        let host = hosts.values().next().unwrap().as_table().unwrap();
        prop_assert_eq!(host["ca"].as_str(), Some(ca.as_str()));
    }

    #[test]
    fn registries_conf_stays_toml(
        mirrors in prop::collection::vec((hostile(), hostile(), hostile()), 0..4)
    ) {
        let mirrors: Vec<(String, Vec<Mirror>)> = mirrors
            .into_iter()
            .map(|(s, origin, namespace)| {
                (s, vec![Mirror { origin, namespace, ca_file: None, skip_verify: false }])
            })
            .collect();
        let text = registries_conf(&mirrors);
        let table: toml::Table = text.parse().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let n = table.get("registry").and_then(toml::Value::as_array).map_or(0, Vec::len);
        prop_assert_eq!(n, mirrors.len(), "{}", text);
        prop_assert!(table.keys().all(|k| k == "registry"), "{}", text);
    }
}
