#!/usr/bin/env python3
"""Signs sample images on a registry the way cosign does, and attaches an SPDX SBOM as an OCI
referrer through the fallback tag. Made without ferry and without cosign: python3's standard
library and the openssl command line only.

    sign_fixtures.py HOST:PORT OUT_DIR

Expects the registry seeded with testdata/make_fixtures.py's sample images. Writes to OUT_DIR:
cosign.key / cosign.pub (a fresh ECDSA P-256 key pair, PEM), other.key / other.pub (a second
pair that signs nothing) and fixtures.json, which says what was done:

    {"signed": [refs], "wrong_digest": [refs], "unsigned": [refs],
     "signatures": {tag-ref: manifest digest}, "sbom": {"image": ref, "manifest": digest,
     "index": digest, "layer": digest}, "digests": {ref: digest}}

Signatures (cosign's layout, https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md):
a manifest tagged `sha256-<hex>.sig` in the image's repository, whose layer
(`application/vnd.dev.cosign.simplesigning.v1+json`) is the simple-signing payload and whose
annotation `dev.cosignproject.cosign/signature` is base64 of the DER ECDSA signature over the
payload bytes (SHA-256).
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
SPDX = "application/spdx+json"
ACCEPT = ", ".join([
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
])


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, addr):
        self.base = f"http://{addr}/v2"
        self.addr = addr

    def request(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req)

    def manifest(self, repo, reference):
        """(bytes, content type) as the registry serves them."""
        with self.request("GET", f"{self.base}/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}) as r:
            return r.read(), r.headers["Content-Type"]

    def push_blob(self, repo, data):
        digest = sha256(data)
        try:
            self.request("HEAD", f"{self.base}/{repo}/blobs/{digest}").close()
            return digest
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        with self.request("POST", f"{self.base}/{repo}/blobs/uploads/", b"") as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.addr}{location}"
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={digest}", data,
                     {"Content-Type": "application/octet-stream"}).close()
        return digest

    def push_manifest(self, repo, reference, data, media_type):
        self.request("PUT", f"{self.base}/{repo}/manifests/{reference}", data,
                     {"Content-Type": media_type}).close()
        return sha256(data)


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True).stdout


def make_key(out, name):
    key = os.path.join(out, f"{name}.key")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("pkey", "-in", key, "-pubout", "-out", os.path.join(out, f"{name}.pub"))
    return key


def descriptor(media_type, data, **extra):
    return dict({"mediaType": media_type, "size": len(data), "digest": sha256(data)}, **extra)


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def sign(reg, key, repo, subject, names):
    """Pushes cosign's signature of `subject` (a digest) to repo:sha256-<hex>.sig; the payload
    names `names` (normally the subject itself)."""
    payload = compact({
        "critical": {
            "identity": {"docker-reference": f"{reg.addr}/{repo}"},
            "image": {"docker-manifest-digest": names},
            "type": "cosign container image signature",
        },
        "optional": None,
    })
    signature = openssl("dgst", "-sha256", "-sign", key, stdin=payload)
    config = compact({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [sha256(payload)]}, "config": {},
    })
    reg.push_blob(repo, payload)
    reg.push_blob(repo, config)
    manifest = compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(SIMPLESIGNING, payload,
                              annotations={SIG_ANNOTATION: base64.b64encode(signature).decode()})],
    })
    tag = subject.replace(":", "-") + ".sig"
    return f"{reg.addr}/{repo}:{tag}", reg.push_manifest(repo, tag, manifest, OCI_MANIFEST)


def attach_sbom(reg, repo, subject_bytes, subject_type):
    """An SPDX document as an OCI 1.1 referrer of the subject, listed by the fallback tag."""
    subject = descriptor(subject_type, subject_bytes)
    sbom = compact({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{repo}", "documentNamespace": f"https://example.invalid/spdx/{subject['digest']}",
        "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: sign_fixtures.py"]},
        "packages": [{"SPDXID": "SPDXRef-busybox", "name": "busybox", "downloadLocation": "NOASSERTION"}],
    })
    empty = b"{}"
    reg.push_blob(repo, empty)
    layer = reg.push_blob(repo, sbom)
    manifest = compact({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SPDX,
        "config": descriptor(OCI_EMPTY, empty),
        "layers": [descriptor(SPDX, sbom)],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    })
    digest = reg.push_manifest(repo, sha256(manifest), manifest, OCI_MANIFEST)
    index = compact({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, manifest, artifactType=SPDX)],
    })
    tag = subject["digest"].replace(":", "-")
    index_digest = reg.push_manifest(repo, tag, index, OCI_INDEX)
    return {"manifest": digest, "index": index_digest, "layer": layer, "tag": f"{reg.addr}/{repo}:{tag}"}


def main():
    addr, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    reg = Registry(addr)
    key = make_key(out, "cosign")
    make_key(out, "other")
    result = {"signed": [], "wrong_digest": [], "unsigned": [], "signatures": {}, "digests": {}}

    def image(name):
        repo, tag = name.rsplit(":", 1)
        data, content_type = reg.manifest(repo, tag)
        result["digests"][f"{addr}/{name}"] = sha256(data)
        return repo, data, content_type.split(";")[0].strip()

    for name in ["sample/hello:1.0", "sample/multi:1.0"]:
        repo, data, _ = image(name)
        ref, digest = sign(reg, key, repo, sha256(data), sha256(data))
        result["signatures"][ref] = digest
        result["signed"].append(f"{addr}/{name}")
    # The index's amd64 child is signed too (cosign sign --recursive does so).
    repo, data, _ = image("sample/multi:1.0")
    amd64 = [m for m in json.loads(data)["manifests"]
             if m.get("platform", {}).get("architecture") == "amd64"][0]["digest"]
    ref, digest = sign(reg, key, repo, amd64, amd64)
    result["signatures"][ref] = digest
    # A valid signature by the right key, over a payload that names another image's digest.
    repo, data, _ = image("sample/world:1.0")
    other = result["digests"][f"{addr}/sample/hello:1.0"]
    ref, digest = sign(reg, key, repo, sha256(data), other)
    result["signatures"][ref] = digest
    result["wrong_digest"].append(f"{addr}/sample/world:1.0")
    image("sample/zstd:1.0")
    result["unsigned"].append(f"{addr}/sample/zstd:1.0")

    repo, data, content_type = image("sample/hello:1.0")
    result["sbom"] = dict(attach_sbom(reg, repo, data, content_type), image=f"{addr}/sample/hello:1.0")
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
