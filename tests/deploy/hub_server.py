#!/usr/bin/env python3
"""A local stand-in for the Hugging Face hub, for `retort download` tests (no test touches the internet).

Serves ROOT/<org>/<name>/<files> in the hub's URL layout:
  GET /api/models/<repo>/revision/<rev>   {"sha": ..., "siblings": [{"rfilename", "size", "blobId", "lfs"?}]}
  GET /<repo>/resolve/<rev>/<file>        the file; *.safetensors and *.bin are LFS files, redirected
                                          (302) to /cdn/<sha256> as the hub redirects to its CDN
  GET /cdn/<sha256>                       LFS contents, honouring "Range: bytes=N-" (206)
Options: --cut-after N   the first request for each LFS file sends N bytes of it, then drops the connection
         --corrupt NAME  serve NAME with its last byte changed (a checksum test)
         --token T       answer 401 unless "Authorization: Bearer T" comes with API and resolve requests
Prints the port on the first line of stdout; logs one line per request (method, path, Range) to --log.
"""
import argparse
import hashlib
import http.server
import json
import os
import socketserver
import sys

args = None
cut_done = set()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def is_lfs(name):
    return name.endswith(".safetensors") or name.endswith(".bin")


def content(path, name):
    data = open(path, "rb").read()
    if args.corrupt and name == args.corrupt:
        data = data[:-1] + bytes([data[-1] ^ 1])
    return data


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send(self, status, body=b"", ctype="application/octet-stream", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def authorised(self):
        return not args.token or self.headers.get("Authorization") == "Bearer " + args.token

    def do_GET(self):
        with open(args.log, "a") as log:
            log.write("GET %s %s\n" % (self.path, self.headers.get("Range", "-")))
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and "revision" in parts:
            i = parts.index("revision")
            repo = "/".join(parts[2:i])
            return self.metadata(repo)
        if "resolve" in parts:
            i = parts.index("resolve")
            repo, name = "/".join(parts[:i]), "/".join(parts[i + 2:])
            return self.resolve(repo, name)
        if parts[0] == "cdn" and len(parts) == 2:
            return self.cdn(parts[1])
        self.send(404, b'{"error": "not found"}', "application/json")

    def metadata(self, repo):
        if not self.authorised():
            return self.send(401, b'{"error": "unauthorised"}', "application/json")
        d = os.path.join(args.root, repo)
        if not os.path.isdir(d):
            return self.send(404, b'{"error": "Repository not found"}', "application/json")
        siblings = []
        for name in sorted(os.listdir(d)):
            data = open(os.path.join(d, name), "rb").read()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            s = {"rfilename": name, "size": len(data), "blobId": blob}
            if is_lfs(name):
                s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(s)
        self.send(200, json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode(), "application/json")

    def resolve(self, repo, name):
        if not self.authorised():
            return self.send(401, b"unauthorised", "text/plain")
        p = os.path.join(args.root, repo, name)
        if not os.path.isfile(p):
            return self.send(404, b"Entry not found", "text/plain")
        data = content(p, name)
        if is_lfs(name):
            sha = hashlib.sha256(open(p, "rb").read()).hexdigest()
            CDN[sha] = (name, data)
            return self.send(302, b"", "text/plain", {"Location": "/cdn/" + sha})
        self.send(200, data)

    def cdn(self, sha):
        if sha not in CDN:
            return self.send(404, b"no such blob", "text/plain")
        name, data = CDN[sha]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
        if args.cut_after and sha not in cut_done and start == 0:
            cut_done.add(sha)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: args.cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if start:
            body = data[start:]
            return self.send(206, body, extra={"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        self.send(200, data)


CDN = {}


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--log", required=True)
    p.add_argument("--cut-after", type=int, default=0)
    p.add_argument("--corrupt", default="")
    p.add_argument("--token", default="")
    args = p.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
