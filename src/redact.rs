//! Keeping secrets out of what ferry shows: the one function every message that may hold a URL,
//! a reference a user typed, or a mirror passes through.
//!
//! Users paste `https://user:password@host/repo:tag` into arguments, list files, manifests and
//! `--mirror`; object stores sign URLs in their query strings. Neither may reach a terminal, a
//! log or a JSON report.

/// Characters that end a word (a URL or reference is never split by them in ferry's messages).
fn is_boundary(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '(' | ')' | '<' | '>' | ',')
}

/// `algorithm:encoded` as the OCI digest grammar has it (`sha256:…`), with an encoded part at
/// least 32 characters long as every registered algorithm's is (`host:5000` is no digest).
fn is_digest(s: &str) -> bool {
    s.split_once(':').is_some_and(|(alg, enc)| {
        !alg.is_empty()
            && enc.len() >= 32
            && alg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
            && enc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=_-".contains(c))
    })
}

/// A URL with a scheme: userinfo and query removed, fragment dropped. A password may hold a
/// `/` typed unescaped, so the userinfo ends at the last `@` (before any query) that is not the
/// `@` of a digest.
fn redact_url(word: &str, scheme_end: usize) -> String {
    let (scheme, rest) = word.split_at(scheme_end);
    let query = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = rest[..query]
        .rmatch_indices('@')
        .map(|(i, _)| i)
        .find(|&i| !is_digest(&rest[i + 1..]));
    match at {
        Some(i) => format!("{scheme}***@{}", strip_query(&rest[i + 1..])),
        None => format!("{scheme}{}", strip_query(rest)),
    }
}

/// Cuts a query string (shown as `?…`) and a fragment.
fn strip_query(path: &str) -> String {
    match path.find(['?', '#']) {
        Some(i) if path[i..].starts_with('?') && path.len() > i + 1 => format!("{}?…", &path[..i]),
        Some(i) => path[..i].to_owned(),
        None => path.to_owned(),
    }
}

/// A reference or mirror without a scheme: `user:pw@host/repo:tag`, `token@host/repo`,
/// `user:pw@host:5000`. An `@` before a digest (`repo:tag@sha256:…`) or inside an e-mail
/// address is left alone.
fn redact_reference(word: &str) -> String {
    let userinfo_end = word.rmatch_indices('@').map(|(i, _)| i).find(|&i| {
        let (before, after) = (&word[..i], &word[i + 1..]);
        !before.contains('/') && !is_digest(after) && (after.contains('/') || before.contains(':'))
    });
    let rest = match userinfo_end {
        Some(i) => format!("***@{}", &word[i + 1..]),
        None => word.to_owned(),
    };
    // A query string on something path-like (`host/path?X-Signature=…`).
    match rest.find('?') {
        Some(i) if rest[..i].contains('/') && rest[i..].contains('=') => strip_query(&rest),
        _ => rest,
    }
}

fn redact_word(word: &str) -> String {
    if let Some(i) = word.find("://") {
        redact_url(word, i + 3)
    } else if word.contains('@') || word.contains('?') {
        redact_reference(word)
    } else {
        word.to_owned()
    }
}

/// Removes credentials (userinfo) and query strings from every URL- or reference-like word of
/// `text`; everything else is kept as it is. Works on a single URL or on a whole message.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start = None;
    for (i, c) in text.char_indices() {
        if is_boundary(c) {
            if let Some(s) = word_start.take() {
                out.push_str(&redact_word(&text[s..i]));
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        out.push_str(&redact_word(&text[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn urls_lose_userinfo_and_queries() {
        assert_eq!(
            redact("https://user:pw@s3.example/bucket/blob?X-Amz-Signature=abc"),
            "https://***@s3.example/bucket/blob?…"
        );
        assert_eq!(
            redact("http://127.0.0.1:5000/v2/a/blobs/sha256:1"),
            "http://127.0.0.1:5000/v2/a/blobs/sha256:1"
        );
        assert_eq!(
            redact("https://u:p@ss@host:5000#frag"),
            "https://***@host:5000"
        );
        assert_eq!(redact("https://[::1]:5000/v2/"), "https://[::1]:5000/v2/");
        assert_eq!(redact("https://u:pa/ss@host/r:1"), "https://***@host/r:1");
    }

    #[test]
    fn references_and_mirrors_lose_userinfo() {
        assert_eq!(redact("user:hunter2@ghcr.io/o/a:1"), "***@ghcr.io/o/a:1");
        assert_eq!(redact("tok3n@ghcr.io/o/a"), "***@ghcr.io/o/a");
        assert_eq!(redact("u:p@ss@mirror:5000"), "***@mirror:5000");
        assert_eq!(
            redact(&format!("u:pw@host/repo@{D}")),
            format!("***@host/repo@{D}")
        );
        assert_eq!(
            redact("docker.io=https://u:pw@mirror.example"),
            "docker.io=https://***@mirror.example"
        );
    }

    #[test]
    fn ordinary_text_is_kept() {
        for s in [
            format!("nginx:1.27@{D}"),
            format!("ghcr.io/o/a@{D}"),
            "write to ops@example.com if stuck".to_owned(),
            "is a registry running at 127.0.0.1:5000?".to_owned(),
            "argument 1: invalid image reference \"Not/Valid\": lowercase".to_owned(),
            "(plain HTTP?)".to_owned(),
            String::new(),
        ] {
            assert_eq!(redact(&s), s);
        }
    }

    #[test]
    fn whole_messages() {
        assert_eq!(
            redact(
                "argument 1: invalid image reference \"https://me:s3cret@h.example/r:t\": no scheme"
            ),
            "argument 1: invalid image reference \"https://***@h.example/r:t\": no scheme"
        );
        assert_eq!(
            redact("fetching (https://store.example/b?sig=1), retrying"),
            "fetching (https://store.example/b?…), retrying"
        );
    }
}
