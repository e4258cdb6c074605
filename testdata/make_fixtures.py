#!/usr/bin/env python3
"""Builds ferry's sample images as an OCI image layout, with nothing but Python's standard
library (and the zstd CLI for one zstd layer). Independent of ferry, so that a ferry bug cannot
cancel itself out in the tests.

    make_fixtures.py OUT_DIR            # the sample set (tests and the demo)
    make_fixtures.py OUT_DIR --bench N  # N large images with random layers (benchmarks)

Every tag is recorded in OUT_DIR/index.json under org.opencontainers.image.ref.name, and a
manifest of what was built (tag -> layer media types, platforms) in OUT_DIR/fixtures.json.
Output is deterministic: fixed timestamps, gzip mtime 0, sorted tar entries.
"""

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EPOCH = 1700000000
BUSYBOX = "/bin/busybox"


class Layout:
    def __init__(self, root):
        self.root = root
        self.refs = []
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def put(self, data, media_type, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        d = {"mediaType": media_type, "digest": digest, "size": len(data)}
        d.update(extra)
        return d

    def put_json(self, obj, media_type, **extra):
        return self.put(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), media_type, **extra)

    def tag(self, name, descriptor):
        d = dict(descriptor)
        d["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs.append(d)

    def finish(self, summary):
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(index, f, indent=2)
        with open(os.path.join(self.root, "fixtures.json"), "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)


def tar_bytes(files, end_blocks=True):
    """files: list of (path, bytes or None for a dir, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode in sorted(files, key=lambda f: f[0]):
            info = tarfile.TarInfo(path)
            info.mtime = EPOCH
            info.mode = mode
            info.uname = info.gname = "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd(data):
    out = subprocess.run(["zstd", "-q", "-c", "-19", "--no-check"], input=data, capture_output=True, check=True)
    return out.stdout


def layer(layout, files, compression="gzip"):
    raw = tar_bytes(files)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    if compression == "gzip":
        return layout.put(gz(raw), LAYER_GZIP), diff_id
    if compression == "zstd":
        return layout.put(zstd(raw), LAYER_ZSTD), diff_id
    return layout.put(raw, LAYER_TAR), diff_id


def image(layout, layers, arch="amd64", variant=None, cmd=None, labels=None, docker=False):
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make_fixtures.py"} for _ in layers],
    }
    if variant:
        config["variant"] = variant
    if docker:
        cfg = layout.put_json(config, DOCKER_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": cfg,
            "layers": [dict(d, mediaType=DOCKER_LAYER) for d, _ in layers],
        }
        return layout.put_json(manifest, DOCKER_MANIFEST)
    cfg = layout.put_json(config, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": cfg,
        "layers": [d for d, _ in layers],
    }
    return layout.put_json(manifest, OCI_MANIFEST)


def base_files():
    files = [
        ("bin", None, 0o755),
        ("etc", None, 0o755),
        ("tmp", None, 0o1777),
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", b"root:x:0:\n", 0o644),
    ]
    if os.path.exists(BUSYBOX):
        # A static busybox makes the samples runnable (ctr run) on an amd64 node.
        with open(BUSYBOX, "rb") as f:
            files.append(("bin/busybox", f.read(), 0o755))
        for applet in ["sh", "cat", "ls", "echo", "true"]:
            files.append(("bin/" + applet, b"#!/bin/busybox\n", 0o755))
    else:
        sys.exit(f"{BUSYBOX} is missing: apt-get install busybox-static")
    return files


def sample(out):
    L = Layout(out)
    base = layer(L, base_files())
    summary = {}

    def text_layer(name, compression="gzip"):
        return layer(L, [(name.strip("/"), f"{name} from ferry's fixtures\n".encode(), 0o644)], compression)

    hello = image(L, [base, text_layer("hello.txt")], cmd=["/bin/cat", "/hello.txt"])
    L.tag("sample/hello:1.0", hello)
    summary["sample/hello:1.0"] = {"layers": [LAYER_GZIP, LAYER_GZIP], "platforms": ["linux/amd64"]}

    world = image(L, [base, text_layer("world.txt")], cmd=["/bin/cat", "/world.txt"])
    L.tag("sample/world:1.0", world)
    summary["sample/world:1.0"] = {"layers": [LAYER_GZIP, LAYER_GZIP], "platforms": ["linux/amd64"]}

    zst = image(L, [base, text_layer("zstd.txt", "zstd")], cmd=["/bin/cat", "/zstd.txt"])
    L.tag("sample/zstd:1.0", zst)
    summary["sample/zstd:1.0"] = {"layers": [LAYER_GZIP, LAYER_ZSTD], "platforms": ["linux/amd64"]}

    raw = image(L, [base, text_layer("raw.txt", "none")], cmd=["/bin/cat", "/raw.txt"])
    L.tag("sample/raw:1.0", raw)
    summary["sample/raw:1.0"] = {"layers": [LAYER_GZIP, LAYER_TAR], "platforms": ["linux/amd64"]}

    # A multi-platform index: amd64 (runnable), arm64/v8 (a text layer only), and a BuildKit
    # style attestation manifest that must be skipped unless --all-platforms.
    amd64 = image(L, [base, text_layer("multi-amd64.txt")], cmd=["/bin/cat", "/multi-amd64.txt"])
    arm64 = image(L, [text_layer("multi-arm64.txt")], arch="arm64", variant="v8")
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": [{"digest": {"sha256": amd64["digest"][7:]}}]}).encode()
    att_layer = L.put(statement, "application/vnd.in-toto+json")
    att_config = L.put_json({"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers", "diff_ids": []}}, OCI_CONFIG)
    att = L.put_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": att_config, "layers": [att_layer]}, OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            dict(amd64, platform={"architecture": "amd64", "os": "linux"}),
            dict(arm64, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
            dict(att, platform={"architecture": "unknown", "os": "unknown"},
                 annotations={"vnd.docker.reference.type": "attestation-manifest",
                              "vnd.docker.reference.digest": amd64["digest"]}),
        ],
    }
    multi = L.put_json(index, OCI_INDEX)
    L.tag("sample/multi:1.0", multi)
    summary["sample/multi:1.0"] = {"index": True, "platforms": ["linux/amd64", "linux/arm64/v8"], "attestations": 1}

    # The same two platforms as a Docker schema2 manifest list (skopeo cannot convert the
    # attestation above, so this one is written directly and pushed byte for byte).
    d_amd64 = image(L, [base, text_layer("multi-amd64.txt")], cmd=["/bin/cat", "/multi-amd64.txt"], docker=True)
    d_arm64 = image(L, [text_layer("multi-arm64.txt")], arch="arm64", variant="v8", docker=True)
    dlist = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            dict(d_amd64, platform={"architecture": "amd64", "os": "linux"}),
            dict(d_arm64, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ],
    }
    L.tag("sample/multi-docker:1.0", L.put_json(dlist, DOCKER_LIST))
    summary["sample/multi-docker:1.0"] = {"index": True, "exact": True, "platforms": ["linux/amd64", "linux/arm64/v8"]}

    # arm64 only: restoring it on an amd64 node must fail clearly.
    arm_only = image(L, [text_layer("arm-only.txt")], arch="arm64", variant="v8")
    L.tag("sample/arm-only:1.0", arm_only)
    summary["sample/arm-only:1.0"] = {"layers": [LAYER_GZIP], "platforms": ["linux/arm64/v8"]}

    L.finish(summary)


def bench(out, count, mib_per_image, shared_mib):
    """count images: one shared base layer of shared_mib, plus two private layers each."""
    L = Layout(out)
    rng = random.Random(42)

    def blob_layer(name, mib):
        # Random bytes are incompressible: gzip level 1 keeps it fast and the size honest.
        data = rng.randbytes(mib << 20)
        raw = tar_bytes([(name, data, 0o644)])
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        return L.put(gzip.compress(raw, compresslevel=1, mtime=0), LAYER_GZIP), diff_id

    base = blob_layer("base.bin", shared_mib)
    summary = {}
    for i in range(count):
        half = max(1, mib_per_image // 2)
        layers = [base, blob_layer(f"a{i}.bin", half), blob_layer(f"b{i}.bin", mib_per_image - half)]
        m = image(L, layers, cmd=["/bin/true"])
        name = f"bench/app{i:02d}:1.0"
        L.tag(name, m)
        summary[name] = {"layers": [LAYER_GZIP] * 3, "platforms": ["linux/amd64"]}
    L.finish(summary)


def small(out, count):
    """count small images (for the per-image overhead benchmark): a shared 64 KiB base layer
    plus one private 1 KiB layer each."""
    L = Layout(out)
    rng = random.Random(7)

    def tiny_layer(name, size):
        raw = tar_bytes([(name, rng.randbytes(size), 0o644)])
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        return L.put(gzip.compress(raw, compresslevel=1, mtime=0), LAYER_GZIP), diff_id

    base = tiny_layer("base.bin", 64 << 10)
    summary = {}
    for i in range(count):
        m = image(L, [base, tiny_layer(f"s{i}.bin", 1024)], cmd=["/bin/true"])
        name = f"small/app{i:03d}:1.0"
        L.tag(name, m)
        summary[name] = {"layers": [LAYER_GZIP] * 2, "platforms": ["linux/amd64"], "exact": True}
    L.finish(summary)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out = args[0]
    if os.path.exists(out):
        shutil.rmtree(out)
    if len(args) >= 3 and args[1] == "--bench":
        count = int(args[2])
        mib = int(os.environ.get("FERRY_BENCH_MIB_PER_IMAGE", "24"))
        shared = int(os.environ.get("FERRY_BENCH_SHARED_MIB", "64"))
        bench(out, count, mib, shared)
    elif len(args) >= 3 and args[1] == "--small":
        small(out, int(args[2]))
    else:
        sample(out)


if __name__ == "__main__":
    main()
