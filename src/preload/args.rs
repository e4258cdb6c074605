//! What `preload-manifests` accepts: names, label selectors, tolerations and quantities are
//! checked against Kubernetes' grammar before they reach a manifest.

use k8s_openapi::api::core::v1::Toleration;

use super::{Flavor, NodeRuntime, PreloadOptions};

/// A value the manifests cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {reason}")]
pub struct PreloadError {
    /// Which option.
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl crate::error::Diagnostic for PreloadError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(format!(
            "see `ferry preload-manifests --help` for {}",
            self.what
        ))
    }
}

/// `Ok` when `ok`, else the refusal.
fn ensure(ok: bool, what: &'static str, value: &str, reason: &str) -> Result<(), PreloadError> {
    if ok {
        Ok(())
    } else {
        Err(refuse(what, value, reason))
    }
}

fn refuse(what: &'static str, value: &str, reason: &str) -> PreloadError {
    PreloadError {
        what,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A DNS-1123 label of at most `max` characters (object names, namespaces).
fn dns_label(what: &'static str, value: &str, max: usize) -> Result<(), PreloadError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    ensure(
        ok,
        what,
        value,
        &format!(
            "must be lowercase letters, digits and '-', at most {max}, not starting or ending with '-'"
        ),
    )
}

/// A label name segment or value: alphanumerics with `-_.` inside, at most 63.
fn label_part(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

/// A label key: `[PREFIX/]NAME`, PREFIX a DNS subdomain.
fn label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    !name.is_empty()
        && label_part(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        })
}

/// `--node-selector K=V`.
pub fn parse_node_selector(text: &str) -> Result<(String, String), PreloadError> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(refuse("--node-selector", text, "give KEY=VALUE"));
    };
    if !label_key(k) || !label_part(v) {
        return Err(refuse(
            "--node-selector",
            text,
            "not a Kubernetes label key and value",
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// `--toleration KEY[=VALUE]:EFFECT` (EFFECT NoSchedule, PreferNoSchedule or NoExecute): with
/// a value the toleration matches it (`Equal`), without one any value (`Exists`).
pub fn parse_toleration(text: &str) -> Result<Toleration, PreloadError> {
    let bad = |reason: &str| refuse("--toleration", text, reason);
    let Some((selector, effect)) = text.rsplit_once(':') else {
        return Err(bad("give KEY[=VALUE]:EFFECT"));
    };
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad("EFFECT is NoSchedule, PreferNoSchedule or NoExecute"));
    }
    let (key, value) = match selector.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (selector, None),
    };
    if !label_key(key) || value.is_some_and(|v| !label_part(v)) {
        return Err(bad("KEY and VALUE follow the label grammar"));
    }
    Ok(Toleration {
        key: Some(key.to_owned()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_owned()),
        value: value.map(str::to_owned),
        effect: Some(effect.to_owned()),
        toleration_seconds: None,
    })
}

/// A resource quantity (`100m`, `256Mi`, `1.5`, `2G`).
fn quantity(what: &'static str, value: &str) -> Result<(), PreloadError> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|&b| b == b'.').count() <= 1
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "Ki" | "Mi" | "Gi" | "Ti"
        );
    ensure(
        ok,
        what,
        value,
        "not a Kubernetes quantity (e.g. 100m, 256Mi)",
    )
}

/// An image reference (what kubelet will pull) or a URL with no room for anything else.
fn plain_token(what: &'static str, value: &str) -> Result<(), PreloadError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            what,
            value,
            "empty, or holds spaces or control characters",
        ));
    }
    Ok(())
}

/// Checks every option before a manifest is built.
pub(super) fn check(o: &PreloadOptions) -> Result<(), PreloadError> {
    // 57: the server's objects add `-serve` and must stay within 63.
    dns_label("NAME", &o.name, 57)?;
    dns_label("--namespace", &o.namespace, 63)?;
    for secret in &o.pull_secrets {
        dns_label("--pull-secret", secret, 253)?;
    }
    if let Some(claim) = &o.serve_from_pvc {
        dns_label("--serve-from-pvc", claim, 253)?;
    }
    for (what, image) in [("--image", &o.image), ("--pause-image", &o.pause_image)] {
        image
            .parse::<crate::reference::ImageRef>()
            .map_err(|e| refuse(what, image, &e.to_string()))?;
    }
    crate::restore::remote::Origin::parse(&o.from, false, crate::registry::RetryPolicy::default())
        .map_err(|e| refuse("--from", &o.from, &e.to_string()))?;
    plain_token("--containerd-socket", &o.containerd_socket)?;
    if !o.containerd_socket.starts_with('/') {
        return Err(refuse(
            "--containerd-socket",
            &o.containerd_socket,
            "an absolute path on the node",
        ));
    }
    for (k, v) in o.resources.requests.iter().chain(&o.resources.limits) {
        quantity(if k == "cpu" { "--cpu" } else { "--memory" }, v)?;
    }
    if o.flavor == Flavor::OpenShift && o.runtime == NodeRuntime::Containerd {
        return Err(refuse(
            "--runtime",
            "containerd",
            "OpenShift nodes run CRI-O (--runtime crio, the default with --flavor openshift)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_and_selectors() {
        let t = parse_toleration("node-role.kubernetes.io/control-plane:NoSchedule").unwrap();
        assert_eq!(t.operator.as_deref(), Some("Exists"));
        assert_eq!(t.value, None);
        let t = parse_toleration("dedicated=gpu:NoExecute").unwrap();
        assert_eq!(
            (
                t.key.as_deref(),
                t.operator.as_deref(),
                t.value.as_deref(),
                t.effect.as_deref()
            ),
            (
                Some("dedicated"),
                Some("Equal"),
                Some("gpu"),
                Some("NoExecute")
            )
        );
        for bad in [
            "x",
            "x:Sometimes",
            "a b:NoSchedule",
            "x=$(id):NoSchedule",
            ":NoSchedule",
        ] {
            assert!(parse_toleration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_node_selector("kubernetes.io/os=linux").unwrap(),
            ("kubernetes.io/os".into(), "linux".into())
        );
        for bad in ["x", "a/b/c=d", "k=v w", "K_/x=y"] {
            assert!(parse_node_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_and_names() {
        for good in ["100m", "256Mi", "1.5", "2G"] {
            assert!(quantity("--cpu", good).is_ok(), "{good}");
        }
        for bad in ["", "m", "1..5", "10 Mi", "1Zi", "-1"] {
            assert!(quantity("--cpu", bad).is_err(), "{bad}");
        }
        assert!(dns_label("NAME", "preload-1", 57).is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(58)] {
            assert!(dns_label("NAME", bad, 57).is_err(), "{bad}");
        }
    }
}
