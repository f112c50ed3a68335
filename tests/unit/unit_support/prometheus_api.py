"""A Prometheus HTTP API stand-in for the unit tier, served from this process on a free local port."""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@contextlib.contextmanager
def prometheus_api(answer):
    """Every GET answers ``{"status": "success", "data": answer(url)}``, ``url`` being the parsed request path (its
    ``path`` and ``query``), as Prometheus' API does. Yields the base URL; the server stops on exit."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"status": "success", "data": answer(urlparse(self.path))}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
