"""One small HTTP GET to ComfyUI, on a plain socket.

`comfy-init health` runs every 10 s in every container and must stay cheap: urllib.request pulls
in http.client, email and ssl (about 35 ms of imports); this needs only socket. It speaks just
what ComfyUI's endpoints answer: HTTP/1.1, a Content-Length or chunked body, JSON. The whole
exchange (connect, send, every read) shares ONE deadline, so a peer that accepts the connection
and never answers costs `timeout` seconds, not one timeout per read.
"""

import json
import socket
import time

LIMIT = 4 * 1024 * 1024  # /system_stats and /queue are small; a bigger answer is not ComfyUI's


class HTTPFailure(Exception):
    """The server did not answer (`status` None) or answered something unusable."""

    def __init__(self, detail, status=None, timed_out=False):
        super().__init__(detail)
        self.status = status
        self.timed_out = timed_out


def split_url(url):
    """(host, port, path) of an http:// URL; IPv6 hosts in brackets."""
    if not url.startswith("http://"):
        raise ValueError(f"not an http:// URL: {url!r}")
    rest = url[len("http://"):]
    authority, slash, path = rest.partition("/")
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    return host, int(port or 80), slash + path or "/"


def get_json(url, timeout):
    """The decoded JSON of a 200 answer to GET `url`; HTTPFailure for anything else (no answer in
    `timeout` seconds, another status, a body that is not JSON)."""
    status, body = get(url, timeout)
    if status != 200:
        raise HTTPFailure(f"answered HTTP {status}", status)
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPFailure("answered something that is not JSON", status) from None


def get(url, timeout):
    """(status, body bytes) of GET `url`; HTTPFailure when there is no complete answer in time."""
    host, port, path = split_url(url)
    deadline = time.monotonic() + timeout
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = (f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\n"
               "Connection: close\r\n\r\n").encode("ascii")
    try:
        # An ASCII host goes as bytes: a str makes getaddrinfo import the idna codec (~2 ms).
        address = host.encode("ascii") if host.isascii() else host
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(request)
            return _read_answer(sock, deadline)
    except TimeoutError:
        raise HTTPFailure(f"no answer within {timeout:g} s", timed_out=True) from None
    except OSError as error:
        raise HTTPFailure(f"no answer: {error.strerror or error}") from None


def _read_answer(sock, deadline):
    data = bytearray()
    head = None
    while True:
        if head is None and b"\r\n\r\n" in data:
            head = _parse_head(bytes(data[:data.index(b"\r\n\r\n")]))
            del data[:data.index(b"\r\n\r\n") + 4]
        if head is not None:
            body = _complete_body(head, data)
            if body is not None:
                return head[0], body
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            if head is not None and "content-length" not in head[1] and "chunked" not in head[1].get(
                    "transfer-encoding", ""):
                return head[0], bytes(data)  # the body ends with the connection
            raise HTTPFailure("the connection closed before a complete answer")
        data += chunk
        if len(data) > LIMIT:
            raise HTTPFailure(f"answered more than {LIMIT} bytes")


def _parse_head(raw):
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HTTPFailure(f"answered something that is not HTTP: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    return int(parts[1]), headers


def _complete_body(head, data):
    """The body when `data` holds all of it, else None."""
    headers = head[1]
    if "chunked" in headers.get("transfer-encoding", ""):
        return _dechunk(data)
    length = headers.get("content-length")
    if length is None:
        return None  # read to the end of the connection
    if not length.isdigit():
        raise HTTPFailure(f"answered a bad Content-Length {length[:20]!r}")
    return bytes(data[:int(length)]) if len(data) >= int(length) else None


def _dechunk(data):
    body, at = bytearray(), 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        try:
            size = int(bytes(data[at:end]).split(b";")[0], 16)
        except ValueError:
            raise HTTPFailure("answered a bad chunk size") from None
        if size == 0:
            return bytes(body)
        if len(data) < end + 2 + size + 2:
            return None
        body += data[end + 2:end + 2 + size]
        at = end + 2 + size + 2
