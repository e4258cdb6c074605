//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1, the distribution token spec) and
//! `Retry-After` values (RFC 9110 section 10.2.3).

use std::time::Duration;

use ferry::registry::{Challenge, parse_challenge, parse_retry_after};
use proptest::prelude::*;

use crate::grammar::DELAY_SECONDS;

/// A quoted-string: `"` and `\` escaped with a backslash.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Printable ASCII without leading or trailing space (the parser trims values).
fn value() -> impl Strategy<Value = String> {
    "[!-~](?:[ -~]{0,30}[!-~])?"
}

/// RFC 9110 `token` characters.
fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}"
}

fn scheme_case(s: &str, mask: u32) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> i & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn never_panics_and_needs_a_known_scheme(
        s in prop_oneof![
            any::<String>(),
            "(?:[Bb]earer|[Bb]asic)?[ ,=\"\\\\a-z\u{e9}\n]{0,40}",
        ]
    ) {
        match parse_challenge(&s) {
            Some(Challenge::Basic) => {
                prop_assert!(s.trim().get(..5).is_some_and(|h| h.eq_ignore_ascii_case("basic")));
            }
            Some(Challenge::Bearer { .. }) => {
                prop_assert!(s.trim().get(..6).is_some_and(|h| h.eq_ignore_ascii_case("bearer")));
            }
            None => {}
        }
    }

    #[test]
    fn bearer_challenges_round_trip(
        mask in any::<u32>(),
        realm in value(),
        service in prop::option::of(value()),
        scope in prop::option::of(value()),
        extra in prop::option::of((token(), value())),
        order in any::<u64>(),
        space in prop::sample::select(vec!["", " ", "  ", "\t"]),
    ) {
        let mut params = vec![format!("realm={}", quoted(&realm))];
        if let Some(s) = &service {
            params.push(format!("service={}", quoted(s)));
        }
        if let Some(s) = &scope {
            params.push(format!("ScOpE={}", quoted(s)));
        }
        if let Some((k, v)) = &extra {
            // An unknown parameter is skipped, whatever its name (unless it is a known one).
            prop_assume!(!["realm", "service", "scope"].contains(&k.to_ascii_lowercase().as_str()));
            params.push(format!("{k}={}", quoted(v)));
        }
        let n = params.len();
        params.rotate_left((order % n as u64) as usize);
        let header = format!("{} {}", scheme_case("bearer", mask), params.join(&format!(",{space}")));
        prop_assert_eq!(
            parse_challenge(&header),
            Some(Challenge::Bearer { realm, service, scope }),
            "{}", header
        );
    }

    #[test]
    fn unquoted_tokens_are_values_too(realm in token(), service in token()) {
        let header = format!("Bearer realm={realm},service={service}");
        prop_assert_eq!(
            parse_challenge(&header),
            Some(Challenge::Bearer { realm, service: Some(service), scope: None })
        );
    }

    #[test]
    fn retry_after_takes_delay_seconds_and_dates(
        s in prop_oneof![any::<String>(), "[+ -]?[0-9]{1,25}", "[A-Za-z0-9 ,:-]{0,32}"]
    ) {
        if parse_retry_after(&s).is_some() {
            let v = s.trim();
            prop_assert!(
                DELAY_SECONDS.is_match(v) || httpdate::parse_http_date(v).is_ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn delay_seconds_are_exact(n in any::<u64>()) {
        prop_assert_eq!(parse_retry_after(&n.to_string()), Some(Duration::from_secs(n)));
    }
}

#[test]
fn tricky_challenges() {
    assert_eq!(parse_challenge("Bearer"), None);
    assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    assert_eq!(parse_challenge("Bearerrealm=\"x\""), None);
    assert_eq!(parse_challenge("Negotiate realm=\"x\""), None);
    let Some(Challenge::Bearer { realm, scope, .. }) =
        parse_challenge("Bearer realm=\"https://a/t?x=1,2\",scope=\"repository:a/b:pull,push\"")
    else {
        panic!("not parsed")
    };
    assert_eq!(realm, "https://a/t?x=1,2");
    assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
    // An unterminated quote takes the rest; nothing panics.
    assert!(parse_challenge("Bearer realm=\"https://a/t").is_some());
    assert!(parse_challenge("Bearer realm=\"a\\").is_some());
}
