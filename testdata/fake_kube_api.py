#!/usr/bin/env python3
"""A fake Kubernetes API server for ferry's --from-cluster tests (no real API server runs on
these machines): it serves recorded list responses over HTTPS, as kubectl would get them.

    fake_kube_api.py --cert C --key K --token T --responses DIR --port-file F --log L

DIR/<plural>.json holds a List of every namespace; namespaced paths filter it. Requests need
`Authorization: Bearer T`. Each request path is appended to L. Standard library only.
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
    args = p.parse_args()

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

        def do_GET(self):
            with open(args.log, "a") as f:
                f.write(self.path + "\n")
            if self.headers.get("Authorization") != "Bearer " + args.token:
                return self.reply(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
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
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
