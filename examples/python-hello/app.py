"""python-hello: a Cloudport sample using only the standard library.

Listens on $PORT, answers GET / with its name (plus $GREETING when set) and
GET /healthz with "ok", and prints one line per request to stdout.
"""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "python-hello"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        print(f"request GET {self.path}", flush=True)
        if self.path == "/healthz":
            body = "ok\n"
        else:
            body = f"{NAME} sample\n"
            greeting = os.environ.get("GREETING")
            if greeting:
                body += f"{greeting}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # The line printed in do_GET is the request log; skip stderr's copy.
        pass


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(f"{NAME} listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
