#!/usr/bin/env python3
"""A fake Kubernetes API server for ferry's --from-cluster tests (no real API server runs on
these machines): it serves recorded list responses over HTTPS, as kubectl would get them.

    fake_kube_api.py --cert C --key K --token T --responses DIR --port-file F --log L

DIR/<plural>.json holds a List of every namespace; namespaced paths filter it. Requests need
`Authorization: Bearer T`. Each request path is appended to L. Standard library only.

For `ferry snapshot` it also answers, as a cluster with the external-snapshotter would:
GET /api/v1/namespaces/NS/persistentvolumeclaims/NAME (from DIR/persistentvolumeclaims.json),
POST and GET /apis/snapshot.storage.k8s.io/v1/namespaces/NS/volumesnapshots[/NAME] (held in
memory; a snapshot becomes readyToUse on its second GET), and GET .../volumesnapshotcontents/NAME.
--scenario changes that: no-crd (the snapshot API is not installed), forbidden (the account may
not create snapshots), stuck (never ready; the snapshot reports a CSI error); old-cronjobs
(a cluster before Kubernetes 1.21: CronJobs only under batch/v1beta1).
"""

import argparse
import http.server
import json
import os
import ssl
import urllib.parse

PLURALS = {"pods", "replicationcontrollers", "podtemplates", "deployments", "replicasets",
           "statefulsets", "daemonsets", "jobs", "cronjobs"}


def main():
    p = argparse.ArgumentParser()
    for a in ["--cert", "--key", "--token", "--responses", "--port-file", "--log"]:
        p.add_argument(a, required=True)
    p.add_argument("--scenario", default="ready",
                   choices=["ready", "no-crd", "forbidden", "stuck", "old-cronjobs"])
    args = p.parse_args()
    snapshots = {}  # (namespace, name) -> object
    gets = {}  # (namespace, name) -> GETs so far

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def status(self, code, reason, message):
            self.reply(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code})

        def authorized(self, method):
            with open(args.log, "a") as f:
                f.write((method + " " if method != "GET" else "") + self.path + "\n")
            if self.headers.get("Authorization") != "Bearer " + args.token:
                self.status(401, "Unauthorized", "Unauthorized")
                return False
            return True

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    chunk = self.rfile.read(size + 2)[:size]
                    if size == 0:
                        return out
                    out += chunk
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def snapshot_route(self, method):
            """Handles the PVC and snapshot paths; returns False for any other path."""
            parts = [x for x in urllib.parse.urlparse(self.path).path.split("/") if x]
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 6 and parts[4] == "persistentvolumeclaims":
                ns, name = parts[3], parts[5]
                path = os.path.join(args.responses, "persistentvolumeclaims.json")
                with open(path) as f:
                    items = json.load(f)["items"]
                for item in items:
                    if item["metadata"]["namespace"] == ns and item["metadata"]["name"] == name:
                        self.reply(200, item)
                        return True
                self.status(404, "NotFound", f'persistentvolumeclaims "{name}" not found')
                return True
            if parts[:3] != ["apis", "snapshot.storage.k8s.io", "v1"]:
                return False
            if args.scenario == "no-crd":
                self.status(404, "NotFound", "the server could not find the requested resource")
                return True
            rest = parts[3:]
            if rest[:1] == ["volumesnapshotcontents"] and len(rest) == 2 and method == "GET":
                self.reply(200, {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                                 "metadata": {"name": rest[1]},
                                 "status": {"readyToUse": True, "restoreSize": 1073741824,
                                            "snapshotHandle": "snap-" + rest[1].removeprefix("snapcontent-")}})
                return True
            if len(rest) < 3 or rest[0] != "namespaces" or rest[2] != "volumesnapshots":
                self.status(404, "NotFound", "the server could not find the requested resource")
                return True
            ns = rest[1]
            if method == "POST" and len(rest) == 3:
                if args.scenario == "forbidden":
                    self.status(403, "Forbidden", 'volumesnapshots.snapshot.storage.k8s.io is forbidden: User '
                                '"system:serviceaccount:default:ferry" cannot create resource "volumesnapshots" '
                                f'in API group "snapshot.storage.k8s.io" in the namespace "{ns}"')
                    return True
                body = json.loads(self.read_body())
                name = body["metadata"]["name"]
                if (ns, name) in snapshots:
                    self.status(409, "AlreadyExists", f'volumesnapshots.snapshot.storage.k8s.io "{name}" already exists')
                    return True
                body["metadata"].update({"namespace": ns, "uid": f"uid-{ns}-{name}", "resourceVersion": "1"})
                snapshots[(ns, name)] = body
                self.reply(201, body)
                return True
            if method == "GET" and len(rest) == 4:
                key = (ns, rest[3])
                if key not in snapshots:
                    self.status(404, "NotFound", f'volumesnapshots.snapshot.storage.k8s.io "{rest[3]}" not found')
                    return True
                gets[key] = gets.get(key, 0) + 1
                obj = dict(snapshots[key])
                if args.scenario == "stuck":
                    obj["status"] = {"readyToUse": False, "error": {
                        "message": "Failed to create snapshot: rpc error: code = Internal desc = volume is busy",
                        "time": "2026-11-23T00:00:00Z"}}
                elif gets[key] >= 2:
                    obj["status"] = {"readyToUse": True, "restoreSize": "1Gi",
                                     "boundVolumeSnapshotContentName": f"snapcontent-{ns}-{rest[3]}"}
                else:
                    obj["status"] = {"readyToUse": False}
                self.reply(200, obj)
                return True
            self.status(405, "MethodNotAllowed", "not supported by this fake")
            return True

        def do_POST(self):
            if self.authorized("POST") and not self.snapshot_route("POST"):
                self.status(405, "MethodNotAllowed", "not supported by this fake")

        def do_GET(self):
            if not self.authorized("GET") or self.snapshot_route("GET"):
                return
            url = urllib.parse.urlparse(self.path)
            parts = [x for x in url.path.split("/") if x]
            # /api/v1[/namespaces/NS]/PLURAL or /apis/GROUP/VERSION[/namespaces/NS]/PLURAL
            rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
            namespace = None
            if len(rest) == 3 and rest[0] == "namespaces":
                namespace, rest = rest[1], rest[2:]
            if len(rest) != 1 or rest[0] not in PLURALS:
                return self.reply(404, {"kind": "Status", "code": 404, "message": "not found"})
            plural = rest[0]
            if args.scenario == "old-cronjobs" and plural == "cronjobs" and parts[1:3] == ["batch", "v1"]:
                # A cluster before Kubernetes 1.21: CronJob is batch/v1beta1 only.
                return self.reply(404, {"kind": "Status", "code": 404, "message": "not found"})
            path = os.path.join(args.responses, plural + ".json")
            doc = {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}
            if os.path.exists(path):
                with open(path) as f:
                    doc = json.load(f)
            if namespace:
                doc["items"] = [i for i in doc["items"] if i["metadata"].get("namespace") == namespace]
            self.reply(200, doc)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    open(args.log, "w").close()  # an empty log: no request yet (a missing one: no fake)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
