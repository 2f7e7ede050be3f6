#!/usr/bin/python3
"""A mock model API for the concurrency-trap benchmark: serves at most --capacity requests at
once, each taking --service seconds; beyond that it answers 429 with Retry-After, as a
rate-limited API does. Writes its port to --port-file and counts what it served in
--stats-file (served, refused) when it gets SIGTERM."""
import argparse
import http.server
import os
import signal
import sys
import threading
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--capacity", type=int, default=5)
    p.add_argument("--service", type=float, default=0.3)
    p.add_argument("--port-file", required=True)
    p.add_argument("--stats-file", required=True)
    args = p.parse_args()
    slots = threading.BoundedSemaphore(args.capacity)
    stats = {"served": 0, "refused": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if not slots.acquire(blocking=False):
                with lock:
                    stats["refused"] += 1
                body = b"rate limited\n"
                self.send_response(429)
                self.send_header("Retry-After", "1")
            else:
                try:
                    time.sleep(args.service)
                finally:
                    slots.release()
                with lock:
                    stats["served"] += 1
                body = b"answer\n"
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(*_):
        with open(args.stats_file, "w") as f:
            f.write(f"{stats['served']} {stats['refused']}\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
