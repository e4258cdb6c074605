//! Docker Hub's names: one registry known by several host names, with its API on another.

/// The registry name references use (`docker.io/library/alpine`).
pub const REGISTRY: &str = "docker.io";

/// The host that serves Docker Hub's distribution API.
pub const API_HOST: &str = "registry-1.docker.io";

/// The key docker and podman store Docker Hub's credentials under.
pub const CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";

/// Whether a host name is one of Docker Hub's names.
pub fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// The host to send API requests to for a registry name.
pub fn api_host(registry: &str) -> &str {
    if is_docker_hub(registry) {
        API_HOST
    } else {
        registry
    }
}

/// A registry name as references spell it: Docker Hub's aliases become `docker.io`.
pub fn canonical(registry: &str) -> &str {
    if is_docker_hub(registry) {
        REGISTRY
    } else {
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(api_host("docker.io"), API_HOST);
        assert_eq!(api_host("index.docker.io"), API_HOST);
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
        assert_eq!(canonical("registry-1.docker.io"), REGISTRY);
        assert_eq!(canonical("quay.io"), "quay.io");
        assert!(!is_docker_hub("docker.io.evil.example"));
    }
}
