#!/usr/bin/env python3
"""A classic Helm chart repository for the tests: index.yaml and the chart archives of DIR.

    helm_repo.py DIR [--user USER:PASSWORD] [--tls CERT KEY]

Writes DIR/index.yaml for every NAME-VERSION.tgz in DIR (digest = sha256 of the file, url
relative, as `helm repo index` writes), plus an entry `liar 0.1.0` whose digest matches no
file, again at each GET of /index.yaml (so a test can republish a chart), then serves DIR on 127.0.0.1 (a free port) and prints `127.0.0.1:PORT` on stdout once it
listens. With --user every request needs that Basic authentication (else 401); with --tls it
serves HTTPS with that certificate and key (PEM). Standard
library only; the index is written as plain text, not with a YAML library.
"""

import argparse
import base64
import hashlib
import http.server
import os
import ssl


def write_index(root):
    lines = ["apiVersion: v1", "entries:"]
    charts = {}
    for f in sorted(os.listdir(root)):
        if f.endswith(".tgz"):
            name, version = f[: -len(".tgz")].rsplit("-", 1)
            with open(os.path.join(root, f), "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            charts.setdefault(name, []).append((version, digest, f))
    first = [f for f in sorted(os.listdir(root)) if f.endswith(".tgz")][0]
    charts.setdefault("liar", []).append(("0.1.0", "0" * 64, first))
    for name, versions in charts.items():
        lines.append(f"  {name}:")
        for version, digest, f in versions:
            lines += [
                "  - apiVersion: v2",
                f"    name: {name}",
                f"    version: {version}",
                f"    digest: {digest}",
                "    urls:",
                f"    - {f}",
            ]
    lines.append("generated: \"2026-12-07T00:00:00Z\"")
    with open(os.path.join(root, "index.yaml.tmp"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(os.path.join(root, "index.yaml.tmp"), os.path.join(root, "index.yaml"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--user")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    root, user = args.dir, args.user
    write_index(root)
    expected = "Basic " + base64.b64encode(user.encode()).decode() if user else None

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)

        def do_GET(self):
            if expected and self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.split("?")[0] == "/index.yaml":
                write_index(root)
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
