#!/usr/bin/env python3
"""Writes an OCI layout holding one single-layer image made from this machine's files (a real
Debian rootfs: /usr/bin programs and dpkg's status), for the binary-delta tests. Not ferry: a
bug in ferry cannot cancel itself out.

usage: rootfs_image.py OUT_DIR VERSION MAX_BYTES
VERSION 1 is the files as they are; VERSION 2 changes 12 of the programs in a few bytes each and
adds a package to dpkg's status (a security update of a base image). The layer is gzip made
by zlib (python's gzip), mtime 0, so the same run gives the same bytes.
"""
import gzip, hashlib, io, json, os, random, sys, tarfile

out, version, max_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = []
total = 0
for name in sorted(os.listdir("/usr/bin")):
    path = "/usr/bin/" + name
    if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 4_000_000:
        continue
    files.append(("usr/bin/" + name, open(path, "rb").read()))
    total += len(files[-1][1])
    if total > max_bytes:
        break
status = open("/var/lib/dpkg/status", "rb").read()
if version == 2:
    rng = random.Random(5)
    for i in rng.sample(range(len(files)), 12):
        name, data = files[i]
        data = bytearray(data)
        for _ in range(20):
            data[rng.randrange(len(data))] = rng.randrange(256)
        files[i] = (name, bytes(data))
    status += b"\nPackage: ferry-test\nStatus: install ok installed\nVersion: 1.0-2\n"
files.append(("var/lib/dpkg/status", status))

plain = io.BytesIO()
with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
    for name, data in files:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o755, 1700000000
        tar.addfile(info, io.BytesIO(data))
plain = plain.getvalue()
layer = gzip.compress(plain, compresslevel=6, mtime=0)

os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{digest}", "wb").write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(plain).hexdigest()]},
}).encode()
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer)}],
}).encode()
index = {"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(manifest),
    "annotations": {"org.opencontainers.image.ref.name": str(version)},
}]}
open(out + "/index.json", "w").write(json.dumps(index))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
