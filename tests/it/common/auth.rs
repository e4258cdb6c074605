//! A TLS registry with htpasswd auth (the real docker-registry, a CA made by openssl), shared
//! by the credential and login tests.

use base64::Engine as _;

use super::*;

pub const USER: &str = "ferry-user";
pub const PASS: &str = "pa55-Word-xyzzy";

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A TLS registry with htpasswd auth, holding the sample images (sample/hello, sample/world...).
pub struct AuthRegistry {
    pub reg: Registry,
    pub tls: Tls,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    pub fn start(mutual: bool) -> AuthRegistry {
        let tls = Tls::new();
        let dir = tempfile::tempdir().unwrap();
        let hp = htpasswd(dir.path(), USER, PASS);
        let (cert, key, ca) = (
            tls.path("server.crt"),
            tls.path("server.key"),
            tls.path("ca.crt"),
        );
        let mut opts = vec!["--htpasswd", hp.to_str().unwrap(), "--tls", &cert, &key];
        if mutual {
            opts.extend(["--client-ca", &ca]);
        }
        // sample/hello and sample/world (among the other samples), seeded once per run.
        let reg = Registry::seeded_with(&opts);
        AuthRegistry {
            reg,
            tls,
            _dir: dir,
        }
    }

    /// `ferry bundle -o OUT --ca-file CA EXTRA... sample/hello:1.0` with `env` set.
    pub fn bundle_hello(
        &self,
        out: &std::path::Path,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> (i32, String, String) {
        let (ca, hello) = (self.tls.path("ca.crt"), self.image("sample/hello:1.0"));
        let mut args = vec!["bundle", "-o", out.to_str().unwrap(), "--ca-file", &ca];
        args.extend(extra);
        args.push(&hello);
        ferry_env(&args, env)
    }

    pub fn image(&self, tag: &str) -> String {
        self.reg.image(tag)
    }
}
