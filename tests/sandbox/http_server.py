#!/usr/bin/python3
"""A test server on loopback for the egress and trace tests: serves --root, writes the port it got
to --port-file, and with --tls CERT KEY speaks HTTPS. GET /status/NNN answers with status NNN;
POST bodies are kept in ROOT/posted/ (an OTLP collector for the trace tests); each GET's path with its
Authorization and Host headers go to ROOT/headers.log; GET /echo sends Authorization back."""
import argparse
import functools
import http.server
import os
import ssl


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        # What credentials each request carried (the secrets.inject tests).
        with open(os.path.join(self.directory, "headers.log"), "a") as f:
            f.write(f"{self.path} {self.headers.get('Authorization', '-')}\n")
            f.write(f"{self.path} host {self.headers.get('Host', '-')}\n")
        if self.path == "/echo":  # echoes the credentials back, as a careless API might
            body = b"echoed\n"
            self.send_response(200)
            self.send_header("X-Echo", self.headers.get("Authorization", "-"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            body = f"status {code}\n".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def do_POST(self):
        """Keeps what was posted: ROOT/posted/N (the body), with the path in N.path."""
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        posted = os.path.join(self.directory, "posted")
        os.makedirs(posted, exist_ok=True)
        n = len(os.listdir(posted)) // 2
        with open(os.path.join(posted, f"{n:04d}.path"), "w") as f:
            f.write(self.path)
        with open(os.path.join(posted, f"{n:04d}"), "wb") as f:
            f.write(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
