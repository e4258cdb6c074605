#!/usr/bin/env python3
"""Makes a Helm chart and a file artifact and pushes them to a registry the way `helm push` and
`oras push` do, through the distribution API (no ferry code involved).

    push_artifacts.py HOST:PORT OUT_DIR

Writes OUT_DIR/mychart-0.1.0.tgz (the chart, Bitnami-style values), OUT_DIR/model.bin (the file)
and OUT_DIR/fixtures.json: for each pushed reference its manifest, config and layer digests by
sha256 of the bytes pushed. Pushed:
  HOST:PORT/charts/mychart:0.1.0   helm: config application/vnd.cncf.helm.config.v1+json (Chart.yaml
                                   as JSON), one layer application/vnd.cncf.helm.chart.content.v1.tar+gzip
  HOST:PORT/files/model:v1         oras: artifactType application/vnd.example.model.v1, empty config
                                   application/vnd.oci.empty.v1+json, one layer titled model.bin
Standard library only.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.error
import urllib.request

CHART_YAML = """apiVersion: v2
name: mychart
version: 0.1.0
appVersion: "1.27.0"
description: A test chart with Bitnami-style values
annotations:
  artifacthub.io/images: |
    - name: nginx
      image: docker.io/bitnami/nginx:1.27.0-debian-12-r1
    - name: exporter
      image: docker.io/bitnami/nginx-exporter:1.3.0
"""

VALUES_YAML = """image:
  registry: docker.io
  repository: bitnami/nginx
  tag: 1.27.0-debian-12-r1
  pullPolicy: IfNotPresent
metrics:
  enabled: false
  image:
    registry: docker.io
    repository: bitnami/nginx-exporter
    tag: 1.3.0
sidecar:
  image: quay.io/prometheus/busybox:latest
replicaCount: 1
"""

TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  template:
    spec:
      containers:
        - name: nginx
          image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""


def chart_tgz():
    """The chart packed as `helm package` does: mychart/ files in a gzip'd tar (fixed times)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in [
            ("mychart/Chart.yaml", CHART_YAML),
            ("mychart/values.yaml", VALUES_YAML),
            ("mychart/templates/deployment.yaml", TEMPLATE),
        ]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, addr):
        self.base = f"http://{addr}"

    def request(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req)

    def blob(self, repo, data):
        with self.request("POST", f"{self.base}/v2/{repo}/blobs/uploads/", b"") as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{sep}digest={sha(data)}", data,
                     {"Content-Type": "application/octet-stream"}).close()
        return {"digest": sha(data), "size": len(data)}

    def manifest(self, repo, tag, doc):
        data = json.dumps(doc, separators=(",", ":")).encode()
        self.request("PUT", f"{self.base}/v2/{repo}/manifests/{tag}", data,
                     {"Content-Type": doc["mediaType"]}).close()
        return data


def push_chart(reg, tgz):
    # helm's config: Chart.yaml's fields as JSON (what `helm push` writes).
    config = json.dumps({
        "name": "mychart", "version": "0.1.0", "appVersion": "1.27.0",
        "description": "A test chart with Bitnami-style values", "apiVersion": "v2",
        "annotations": {"artifacthub.io/images": "- name: nginx\n  image: docker.io/bitnami/nginx:1.27.0-debian-12-r1\n- name: exporter\n  image: docker.io/bitnami/nginx-exporter:1.3.0\n"},
    }, separators=(",", ":")).encode()
    c = reg.blob("charts/mychart", config)
    l = reg.blob("charts/mychart", tgz)
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", **c},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", **l}],
        "annotations": {
            "org.opencontainers.image.title": "mychart",
            "org.opencontainers.image.version": "0.1.0",
        },
    }
    data = reg.manifest("charts/mychart", "0.1.0", doc)
    return {"reference": "charts/mychart:0.1.0", "manifest": sha(data), "config": c["digest"],
            "layer": l["digest"], "size": len(data)}


def push_file(reg, payload):
    empty = reg.blob("files/model", b"{}")
    l = reg.blob("files/model", payload)
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.model.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty, "data": "e30="},
        "layers": [{
            "mediaType": "application/octet-stream", **l,
            "annotations": {"org.opencontainers.image.title": "model.bin"},
        }],
        "annotations": {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"},
    }
    data = reg.manifest("files/model", "v1", doc)
    return {"reference": "files/model:v1", "manifest": sha(data), "config": empty["digest"],
            "layer": l["digest"], "size": len(data)}


def main():
    addr, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    reg = Registry(addr)
    tgz = chart_tgz()
    with open(os.path.join(out, "mychart-0.1.0.tgz"), "wb") as f:
        f.write(tgz)
    payload = bytes((i * 7 + 3) % 256 for i in range(4096))
    with open(os.path.join(out, "model.bin"), "wb") as f:
        f.write(payload)
    fixtures = {"chart": push_chart(reg, tgz), "file": push_file(reg, payload)}
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(fixtures, f, indent=1)


if __name__ == "__main__":
    main()
