"""python-deps: a Cloudport sample with one dependency from PyPI (six).

Shows that requirements.txt is installed into a virtualenv at build time.
Listens on $PORT, answers GET / with its name and GET /healthz with "ok".
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import six

NAME = "python-deps"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        print(f"request GET {self.path}", flush=True)
        if self.path == "/healthz":
            body = "ok\n"
        else:
            body = f"{NAME} sample (six {six.__version__})\n"
        data = six.ensure_binary(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"{NAME} listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
