#!/usr/bin/env python3
"""The server's memory per idle session: N idle CONNECT sessions, then N idle UDP
associations (each has relayed one datagram, so its relay socket and state exist), held
open while the server's resident memory (VmRSS of its process) is read.

Runs a release build of socksgate on 127.0.0.1 with the access log off, a TCP echo and a
UDP echo in this process, and prints bytes per session and per association. Not a test:
numbers for docs/performance.md.

    cargo build --release && python3 bench/idle_memory.py [--count 1000] [--reps 3] [--bin PATH]

The figures in docs/performance.md: --count 2000 --reps 5.
"""

import argparse
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def socks5_hello(control):
    control.sendall(b"\x05\x01\x00")
    if control.recv(2) != b"\x05\x00":
        raise RuntimeError("the server refused the no-authentication method")


def read_reply(control):
    head = recv_exactly(control, 4)
    if head[1] != 0:
        raise RuntimeError(f"reply {head[1]}")
    length = {1: 4, 4: 16}[head[3]]
    body = recv_exactly(control, length + 2)
    host = socket.inet_ntop(socket.AF_INET if head[3] == 1 else socket.AF_INET6, body[:length])
    return host, struct.unpack("!H", body[length:])[0]


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise RuntimeError("closed early")
        data += chunk
    return data


def request(control, command, host, port):
    control.sendall(b"\x05" + bytes([command]) + b"\x00\x01" + socket.inet_aton(host)
                    + struct.pack("!H", port))
    return read_reply(control)


def tcp_echo():
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)

    def serve():
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=echo_one, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def echo_one(connection):
    with connection:
        while data := connection.recv(4096):
            connection.sendall(data)


def udp_echo():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data, peer)

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def free_port():
    """A port nothing listens on now (the kernel's choice), for this run's server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(server, proxy):
    for _ in range(50):
        if server.poll() is not None:
            sys.exit(f"the server exited ({server.returncode}) before it served")
        try:
            socket.create_connection(proxy, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not serve within 5 s")


def settle(pid):
    """The server's RSS once it stops changing (or after 3 s)."""
    last = rss(pid)
    for _ in range(30):
        time.sleep(0.1)
        now = rss(pid)
        if now == last:
            return now
        last = now
    return last


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--bin", default="target/release/socksgate")
    parser.add_argument("--reps", type=int, default=3,
                        help="fresh servers per kind; the median is printed")
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results = {"connect": [], "udp": []}
    for _ in range(arguments.reps):
        for kind in results:
            results[kind].append(measure(arguments, kind))
    for kind, label in (("connect", "idle CONNECT session"), ("udp", "idle UDP association")):
        runs = sorted(results[kind])
        shown = ", ".join(f"{run:,.0f}" for run in results[kind])
        print(f"{label}: {runs[len(runs) // 2]:,.0f} bytes of server memory, median of "
              f"{len(runs)} fresh servers ({shown}), {arguments.count} held each time")


def measure(arguments, kind):
    """Bytes per idle session of `kind` on a fresh server."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        port = free_port()
        config.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\n'
                     "[log]\naccess = false\n"
                     f"[limits]\nmax_sessions = {4 * arguments.count}\n")
    server = subprocess.Popen([arguments.bin, "serve", "-c", config.name],
                              stderr=subprocess.DEVNULL)
    try:
        proxy = ("127.0.0.1", port)
        wait_until_serving(server, proxy)
        target = tcp_echo() if kind == "connect" else udp_echo()
        opener = open_connect if kind == "connect" else open_association
        # Warm up: the runtime's threads, the allocator's first arenas.
        warm = [opener(proxy, target) for _ in range(50)]
        del warm
        time.sleep(0.5)
        base = settle(server.pid)
        held = [opener(proxy, target) for _ in range(arguments.count)]
        grown = settle(server.pid) - base
        del held
        return grown / arguments.count
    finally:
        server.terminate()
        server.wait()
        os.unlink(config.name)


def open_connect(proxy, port):
    control = socket.create_connection(proxy)
    socks5_hello(control)
    request(control, 1, "127.0.0.1", port)
    control.sendall(b"x")
    recv_exactly(control, 1)
    return control


def open_association(proxy, port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    control = socket.create_connection(proxy)
    socks5_hello(control)
    relay = request(control, 3, *udp.getsockname())
    header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port)
    udp.sendto(header + b"once", relay)
    udp.settimeout(5)
    data, _ = udp.recvfrom(2048)
    if not data.endswith(b"once"):
        sys.exit("the association did not relay")
    return control, udp


if __name__ == "__main__":
    main()
