#!/usr/bin/env python3
"""HTTP CONNECT through socksgate against squid and tinyproxy (Debian's), and against
socksgate's own SOCKS5 path, in one interleaved run: connection rate (connect, CONNECT,
a one-byte echo, close) and throughput (bulk bytes up through one tunnel per stream).

Each proxy is pinned to CPU 0 and everything else (this load generator, the targets) to
CPU 1. The figures that compare servers fairly on a shared 2-CPU machine are the server's
CPU time per unit: CPU-µs per connection cycle, and Gbit per server CPU-second; the rates
themselves are bounded by this Python load generator and are the same for every peer.
Every echo is checked, and every byte count: an error fails the run.

    cargo build --release
    python3 bench/http_connect.py [--reps 3] [--seconds 5] [--peers socksgate-http,socksgate-socks5,squid,tinyproxy]

Needs root (squid and tinyproxy drop to their own users), squid, tinyproxy and taskset.
Not a test: numbers for docs/performance.md.
"""

import argparse
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} never listened on {port}")


def cpu_seconds(pid):
    """User and system CPU of a process and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# Targets, in a process of their own on CPU 1: an echo (connection rate) and a sink that
# takes the byte count it is told and answers what it took (throughput).
def targets(echo_port, sink_port):
    os.sched_setaffinity(0, {1})

    def echo(connection):
        with connection:
            while True:
                data = connection.recv(65536)
                if not data:
                    return
                connection.sendall(data)

    def sink(connection):
        # The length first: squid and tinyproxy do not pass a half-close on, so the
        # sink cannot wait for the end of the stream.
        with connection:
            header = b""
            while len(header) < 8:
                chunk = connection.recv(8 - len(header))
                if not chunk:
                    return
                header += chunk
            expected, total = struct.unpack("!Q", header)[0], 0
            while total < expected:
                data = connection.recv(1 << 20)
                if not data:
                    break
                total += len(data)
            connection.sendall(struct.pack("!Q", total))

    def serve(port, handler):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(4096)
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=handler, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, args=(sink_port, sink), daemon=True).start()
    serve(echo_port, echo)


class Peer:
    """A proxy under test: how to start it and how to open a tunnel through it."""

    def __init__(self, name, port, protocol, process):
        self.name, self.port, self.protocol, self.process = name, port, protocol, process

    def tunnel(self, target_port):
        connection = socket.create_connection(("127.0.0.1", self.port))
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.protocol == "http":
            connection.sendall(
                b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (target_port, target_port)
            )
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = connection.recv(1)
                if not byte:
                    raise RuntimeError(f"{self.name}: closed during CONNECT")
                head += byte
            if not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
                raise RuntimeError(f"{self.name}: {head[:40]!r}")
        else:
            # Greeting and request in one write; the two replies then.
            connection.sendall(
                b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", target_port)
            )
            reply = b""
            while len(reply) < 12:
                chunk = connection.recv(12 - len(reply))
                if not chunk:
                    raise RuntimeError(f"{self.name}: closed during the handshake")
                reply += chunk
            if reply[:2] != b"\x05\x00" or reply[3] != 0:
                raise RuntimeError(f"{self.name}: {reply!r}")
        return connection


def start_socksgate(protocol, binary, scratch):
    port = free_port()
    config = os.path.join(scratch, f"socksgate-{protocol}.toml")
    with open(config, "w") as out:
        out.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\n[log]\naccess = false\n')
    process = subprocess.Popen(
        ["taskset", "-c", "0", binary, "serve", "-c", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, "socksgate")
    return Peer(f"socksgate-{protocol}", port, protocol, process)


def start_squid(scratch):
    port = free_port()
    home = os.path.join(scratch, "squid")
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o777)
    conf = os.path.join(home, "squid.conf")
    with open(conf, "w") as out:
        out.write(
            f"http_port 127.0.0.1:{port}\npid_filename {home}/squid.pid\n"
            f"access_log none\ncache_log {home}/cache.log\ncache_store_log none\n"
            f"cache deny all\ncoredump_dir {home}\nacl loopback src 127.0.0.0/8\n"
            "http_access allow loopback\nhttp_access deny all\nshutdown_lifetime 1 seconds\n"
            "max_filedescriptors 16384\n"
        )
    process = subprocess.Popen(
        ["taskset", "-c", "0", shutil.which("squid") or "/usr/sbin/squid", "-N", "-f", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, "squid")
    return Peer("squid", port, "http", process)


def start_tinyproxy(scratch):
    port = free_port()
    conf = os.path.join(scratch, "tinyproxy.conf")
    with open(conf, "w") as out:
        out.write(
            f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 1024\n"
            "Allow 127.0.0.1\nLogLevel Critical\nUser nobody\nGroup nogroup\n"
            "DisableViaHeader Yes\n"
        )
    process = subprocess.Popen(
        ["taskset", "-c", "0", shutil.which("tinyproxy") or "/usr/bin/tinyproxy", "-d", "-c", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, "tinyproxy")
    return Peer("tinyproxy", port, "http", process)


def connrate_worker(peer, echo_port, seconds, results):
    os.sched_setaffinity(0, {1})
    cycles = errors = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with peer.tunnel(echo_port) as connection:
                connection.sendall(b"x")
                if connection.recv(1) != b"x":
                    raise RuntimeError("echo")
            cycles += 1
        except (OSError, RuntimeError):
            errors += 1
    results.put((cycles, errors))


def connrate(peer, echo_port, seconds, workers):
    results = multiprocessing.Queue()
    pid = peer.process.pid
    before = cpu_seconds(pid)
    started = time.time()
    processes = [
        multiprocessing.Process(target=connrate_worker, args=(peer, echo_port, seconds, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    totals = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.time() - started
    cpu = cpu_seconds(pid) - before
    cycles = sum(c for c, _ in totals)
    errors = sum(e for _, e in totals)
    if errors or not cycles:
        sys.exit(f"{peer.name}: {errors} failed cycles of {cycles + errors}")
    return cycles / elapsed, cpu * 1e6 / cycles


def throughput_worker(peer, sink_port, total, results):
    os.sched_setaffinity(0, {1})
    block = b"\x5a" * (1 << 20)
    with peer.tunnel(sink_port) as connection:
        connection.sendall(struct.pack("!Q", total))
        sent = 0
        while sent < total:
            connection.sendall(block)
            sent += len(block)
        answer = b""
        while len(answer) < 8:
            chunk = connection.recv(8 - len(answer))
            if not chunk:
                break
            answer += chunk
    results.put(struct.unpack("!Q", answer)[0] if len(answer) == 8 else -1)


def throughput(peer, sink_port, streams, mib):
    total = mib << 20
    results = multiprocessing.Queue()
    pid = peer.process.pid
    before = cpu_seconds(pid)
    started = time.time()
    processes = [
        multiprocessing.Process(target=throughput_worker, args=(peer, sink_port, total, results))
        for _ in range(streams)
    ]
    for process in processes:
        process.start()
    received = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.time() - started
    cpu = cpu_seconds(pid) - before
    if any(count != total for count in received):
        sys.exit(f"{peer.name}: the sink counted {received}, not {total} each")
    gbit = streams * total * 8 / 1e9
    return gbit / elapsed, gbit / max(cpu, 1e-6)


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--mib", type=int, default=1024, help="MiB per stream")
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/socksgate"))
    parser.add_argument("--peers", default="socksgate-http,socksgate-socks5,squid,tinyproxy")
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="socksgate-http-bench-")
    echo_port, sink_port = free_port(), free_port()
    target_process = multiprocessing.Process(target=targets, args=(echo_port, sink_port), daemon=True)
    target_process.start()
    wait_listening(echo_port, "the echo target")
    wait_listening(sink_port, "the sink target")
    starters = {
        "socksgate-http": lambda: start_socksgate("http", options.bin, scratch),
        "socksgate-socks5": lambda: start_socksgate("socks5", options.bin, scratch),
        "squid": lambda: start_squid(scratch),
        "tinyproxy": lambda: start_tinyproxy(scratch),
    }
    names = options.peers.split(",")
    peers = {name: starters[name]() for name in names}
    figures = {name: {"rate": [], "cpu_us": [], "gbit": [], "gbit_cpu": []} for name in names}
    try:
        for rep in range(options.reps):
            # Interleaved: each repetition measures every peer, so drift hits all alike.
            for name in names:
                peer = peers[name]
                rate, cpu_us = connrate(peer, echo_port, options.seconds, options.workers)
                gbit, gbit_cpu = throughput(peer, sink_port, options.streams, options.mib)
                for key, value in zip(("rate", "cpu_us", "gbit", "gbit_cpu"), (rate, cpu_us, gbit, gbit_cpu)):
                    figures[name][key].append(value)
                print(
                    f"rep {rep + 1} {name}: {rate:,.0f} cycles/s, {cpu_us:.1f} server CPU-µs/cycle; "
                    f"{gbit:.2f} Gbit/s, {gbit_cpu:.2f} Gbit per server CPU-s",
                    flush=True,
                )
    finally:
        for peer in peers.values():
            peer.process.terminate()
            peer.process.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    best_cpu = min(median(figures[name]["cpu_us"]) for name in names)
    best_gbit_cpu = max(median(figures[name]["gbit_cpu"]) for name in names)
    print(f"\nmedians of {options.reps} (ratios: to the best peer)\n")
    print("| peer | cycles/s | server CPU-µs/cycle (× best) | Gbit/s | Gbit per server CPU-s (× best) |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        f = {key: median(values) for key, values in figures[name].items()}
        print(
            f"| {name} | {f['rate']:,.0f} | {f['cpu_us']:.1f} ({f['cpu_us'] / best_cpu:.2f}) "
            f"| {f['gbit']:.2f} | {f['gbit_cpu']:.2f} ({f['gbit_cpu'] / best_gbit_cpu:.2f}) |"
        )


if __name__ == "__main__":
    main()
