"""An HTTP/1.1 origin server for the HTTP proxy tests, on CPython's http.server.

Prints its port on the first line of stdout. GET /headers answers the request's header
fields as JSON; GET /chunked answers a chunked body; GET /page an HTML page; POST and PUT answer the length and
SHA-256 of the body they received (Content-Length or chunked); any other GET answers
"hello from the origin". Each connection's client port goes to stderr as it is accepted.
With CERT and KEY arguments it serves HTTPS.
"""

import hashlib
import http.server
import json
import socketserver
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        print(f"connection {self.client_address[1]}", file=sys.stderr, flush=True)

    def log_message(self, format, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self, payload, content_type="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path.startswith("/headers"):
            fields = {name.lower(): value for name, value in self.headers.items()}
            fields["request-line"] = self.requestline
            self.answer(json.dumps(fields).encode())
        elif self.path.startswith("/page"):
            page = (
                b"<html><head><title>socksgate</title></head><body style='font: 32px sans-serif'>"
                b"<h1 id='greeting'>hello through socksgate's HTTP proxy</h1></body></html>"
            )
            self.answer(page, "text/html")
        elif self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"chunked ", b"body ", b"from the origin"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.answer(b"hello from the origin", "text/plain")

    def do_POST(self):
        data = self.body()
        digest = {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        self.answer(json.dumps(digest).encode())

    do_PUT = do_POST


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
if len(sys.argv) == 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
