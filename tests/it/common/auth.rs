//! A TLS registry with htpasswd auth (the real docker-registry, a CA made by openssl), shared
//! by the credential and login tests.

use base64::Engine as _;

use super::*;

pub const USER: &str = "ferry-user";
pub const PASS: &str = "pa55-Word-xyzzy";

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A TLS registry with htpasswd auth, holding sample/hello and sample/world.
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
        let reg = Registry::start_with(&opts);
        // skopeo's certs.d-style folder: ca.crt, and client.cert/key for mutual TLS.
        let skopeo_certs = dir.path().join("skopeo-certs");
        std::fs::create_dir_all(&skopeo_certs).unwrap();
        std::fs::copy(tls.path("ca.crt"), skopeo_certs.join("ca.crt")).unwrap();
        std::fs::copy(tls.path("client.crt"), skopeo_certs.join("client.cert")).unwrap();
        std::fs::copy(tls.path("client.key"), skopeo_certs.join("client.key")).unwrap();
        for tag in ["sample/hello:1.0", "sample/world:1.0"] {
            skopeo_push(
                &reg.addr,
                tag,
                Some(&format!("{USER}:{PASS}")),
                Some(&skopeo_certs),
            );
        }
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
