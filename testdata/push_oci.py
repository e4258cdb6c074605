#!/usr/bin/env python3
"""Pushes one tag of an OCI layout to a registry byte for byte, through the distribution API.

    push_oci.py LAYOUT TAG http://HOST:PORT/REPO:TAG [--user U:P]
    push_oci.py LAYOUT --all http://HOST:PORT     (every tag under its own name, one process)

skopeo recompresses uncompressed layers on the way to a registry; this does not, so fixtures
with uncompressed or zstd layers reach the registry exactly as built. Standard library only.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request


def main():
    layout, tag, dest = sys.argv[1:4]
    if tag == "--all":
        with open(os.path.join(layout, "index.json")) as f:
            tags = [d["annotations"]["org.opencontainers.image.ref.name"] for d in json.load(f)["manifests"]]
        for t in tags:
            sys.argv[2:4] = [t, f"{dest}/{t}"]
            main()
        return
    user = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--user" else None
    scheme, rest = dest.split("://", 1)
    host, path = rest.split("/", 1)
    repo, dest_tag = path.rsplit(":", 1)
    base = f"{scheme}://{host}/v2/{repo}"
    headers = {}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()

    def blob_path(digest):
        return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])

    def request(method, url, data=None, extra=None):
        req = urllib.request.Request(url, data=data, method=method, headers={**headers, **(extra or {})})
        return urllib.request.urlopen(req)

    def push_blob(desc):
        digest = desc["digest"]
        try:
            request("HEAD", f"{base}/blobs/{digest}")
            return
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        with request("POST", f"{base}/blobs/uploads/", b"") as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"{scheme}://{host}{location}"
        sep = "&" if "?" in location else "?"
        with open(blob_path(digest), "rb") as f:
            data = f.read()
        request("PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"}).close()

    def push_manifest(desc, reference):
        with open(blob_path(desc["digest"]), "rb") as f:
            data = f.read()
        doc = json.loads(data)
        if "manifests" in doc:
            for child in doc["manifests"]:
                push_manifest(child, child["digest"])
        else:
            push_blob(doc["config"])
            for layer in doc["layers"]:
                push_blob(layer)
        request("PUT", f"{base}/manifests/{reference}", data, {"Content-Type": desc["mediaType"]}).close()

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            push_manifest(desc, dest_tag)
            return
    sys.exit(f"{tag} is not in {layout}")


if __name__ == "__main__":
    main()
