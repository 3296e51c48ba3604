#!/usr/bin/env python3
"""Soak: a release server under mixed load for a long time, checking that its memory and
descriptors stay flat. Not a test (it takes 30 minutes by default); its figures go into
docs/performance.md.

The load, all on 127.0.0.1 against targets in this process:
  - CONNECT churn: workers that connect, move 4 KiB each way, verify and close, in a loop;
  - long sessions that stay open the whole run and echo a verified message every second
    (they must survive every reload and fault);
  - UDP: associations opened, 20 datagrams echoed and verified, closed, in a loop;
  - BIND: a listener opened through the proxy, reached by a peer, 1 KiB each way, closed;
  - a reload (SIGHUP, the file alternating between two valid versions) every 10 s;
  - a fault every minute, in turn: 500 clients that connect and reset at once, 200 that
    send half a handshake and wait, 200 that send garbage, a target that stops reading
    under a pushing client, connects to a port where nothing listens, a burst of 200 UDP
    associations whose clients reset their control connections at once.

Every 10 s it samples the server's resident memory and descriptors. Twice it takes a sample
at rest (the churn paused, the faults over, the long sessions open): once every fault has
come round once (the warm-up: each raises the allocator's high-water mark the first time),
and at the end. It exits non-zero when memory at rest grew by more than --max-growth
percent, when descriptors at rest grew at all, when a reload was refused, or when any
verified exchange failed.

    cargo build --release && python3 bench/soak.py [--minutes 30] [--bin PATH]
"""

import argparse
import asyncio
import os
import random
import resource
import signal
import socket
import struct
import sys
import tempfile
import time

def free_port():
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PORT = free_port()
ADMIN = free_port()
# Set while the churn runs; cleared to take an idle sample (the long sessions stay).
RUNNING = None


def config_text(version):
    # Two valid versions: a reload that changes something real (a rule for a port nothing
    # uses) each time.
    denied = 9 if version % 2 == 0 else 13
    return (f'[[listen]]\naddress = "127.0.0.1:{PORT}"\n'
            f'[admin]\naddress = "127.0.0.1:{ADMIN}"\n'
            "[log]\naccess = false\n"
            "[limits]\nmax_sessions = 4000\n"
            "[timeouts]\nhandshake = \"5s\"\n"
            f'[[rule]]\naction = "deny"\nports = [{denied}]\n'
            '[[rule]]\naction = "allow"\n')


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Counts:
    def __init__(self):
        self.ok = {}
        self.failed = {}

    def success(self, kind):
        self.ok[kind] = self.ok.get(kind, 0) + 1

    def failure(self, kind, error):
        self.failed[kind] = self.failed.get(kind, 0) + 1
        if self.failed[kind] <= 3:
            print(f"  {kind} failed: {error!r}", file=sys.stderr)


# --- SOCKS5, as a client -------------------------------------------------------------

async def socks_request(command, host, port):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(b"\x05\x01\x00")
    if await reader.readexactly(2) != b"\x05\x00":
        raise RuntimeError("method refused")
    writer.write(b"\x05" + bytes([command]) + b"\x00\x01" + socket.inet_aton(host)
                 + struct.pack("!H", port))
    bound = await read_reply(reader)
    return reader, writer, bound


async def read_reply(reader):
    head = await reader.readexactly(4)
    if head[1] != 0:
        raise RuntimeError(f"reply {head[1]}")
    body = await reader.readexactly(6 if head[3] == 1 else 18)
    host = socket.inet_ntop(socket.AF_INET if head[3] == 1 else socket.AF_INET6, body[:-2])
    return host, struct.unpack("!H", body[-2:])[0]


def close(writer):
    writer.close()


# --- targets ---------------------------------------------------------------------------

async def echo_client(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, peer):
        self.transport.sendto(data, peer)


async def sink_that_never_reads(reader, writer):
    await asyncio.sleep(10)
    writer.close()


# --- load ------------------------------------------------------------------------------

async def connect_churn(echo_port, counts, stop):
    while not stop.is_set():
        await RUNNING.wait()
        try:
            reader, writer, _ = await socks_request(1, "127.0.0.1", echo_port)
            payload = random.randbytes(4096)
            writer.write(payload)
            back = await reader.readexactly(len(payload))
            if back != payload:
                raise RuntimeError("echo changed")
            close(writer)
            counts.success("connect")
        except Exception as error:  # noqa: BLE001 (counted and reported)
            counts.failure("connect", error)
            await asyncio.sleep(0.1)


async def long_session(echo_port, counts, stop):
    reader, writer, _ = await socks_request(1, "127.0.0.1", echo_port)
    while not stop.is_set():
        message = random.randbytes(512)
        writer.write(message)
        try:
            back = await asyncio.wait_for(reader.readexactly(len(message)), 10)
        except Exception as error:  # noqa: BLE001
            counts.failure("long", error)
            return
        if back != message:
            counts.failure("long", "echo changed")
            return
        counts.success("long")
        await asyncio.sleep(1)
    close(writer)


async def udp_rounds(udp_port, counts, stop):
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        await RUNNING.wait()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        writer = None
        try:
            _, writer, relay = await socks_request(3, *sock.getsockname())
            header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", udp_port)
            for _ in range(20):
                payload = random.randbytes(512)
                await loop.sock_sendto(sock, header + payload, relay)
                data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 5)
                if not data.endswith(payload):
                    raise RuntimeError("datagram changed")
            counts.success("udp")
        except Exception as error:  # noqa: BLE001
            counts.failure("udp", error)
            await asyncio.sleep(0.1)
        finally:
            if writer:
                close(writer)
            sock.close()


async def bind_rounds(counts, stop):
    while not stop.is_set():
        await RUNNING.wait()
        writer = None
        try:
            reader, writer, (host, port) = await socks_request(2, "127.0.0.1", 0)
            peer_reader, peer_writer = await asyncio.open_connection(
                "127.0.0.1" if host == "0.0.0.0" else host, port)
            await read_reply(reader)
            there, back = random.randbytes(1024), random.randbytes(1024)
            writer.write(there)
            peer_writer.write(back)
            if await peer_reader.readexactly(1024) != there or await reader.readexactly(1024) != back:
                raise RuntimeError("bind relay changed the bytes")
            peer_writer.close()
            counts.success("bind")
        except Exception as error:  # noqa: BLE001
            counts.failure("bind", error)
        finally:
            if writer:
                close(writer)
        await asyncio.sleep(0.2)


# --- faults ----------------------------------------------------------------------------

async def fault_resets():
    socks = []
    for _ in range(500):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", PORT))
        except OSError:
            pass
        socks.append(sock)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


async def fault_half_handshakes():
    writers = []
    for _ in range(200):
        _, writer = await asyncio.open_connection("127.0.0.1", PORT)
        writer.write(b"\x05\x02\x00")
        writers.append(writer)
    await asyncio.sleep(7)  # past the 5 s handshake deadline: the server must have closed
    for writer in writers:
        writer.close()


async def fault_garbage():
    for _ in range(200):
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        writer.write(random.randbytes(random.randint(1, 600)))
        try:
            await asyncio.wait_for(reader.read(100), 2)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        writer.close()


async def fault_stalled_target(sink_port):
    reader, writer, _ = await socks_request(1, "127.0.0.1", sink_port)
    chunk = b"\x5a" * 65536
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        writer.write(chunk)
        try:
            await asyncio.wait_for(writer.drain(), 1)
        except (asyncio.TimeoutError, ConnectionError):
            break
    writer.transport.abort()


async def fault_refused_targets():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    for _ in range(200):
        try:
            _, writer, _ = await socks_request(1, "127.0.0.1", port)
            writer.close()
        except Exception:  # noqa: BLE001 (refused is the expected outcome)
            pass


async def fault_vanishing_associations():
    held = []
    for _ in range(200):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        try:
            _, writer, _ = await socks_request(3, *sock.getsockname())
            held.append((sock, writer))
        except Exception:  # noqa: BLE001
            sock.close()
    for sock, writer in held:
        writer.transport.abort()
        sock.close()


# --- the run ---------------------------------------------------------------------------

async def soak(arguments):
    config_path = os.path.join(tempfile.mkdtemp(prefix="sg-soak-"), "soak.toml")
    with open(config_path, "w") as config:
        config.write(config_text(0))
    log = open(config_path + ".log", "w")
    server = await asyncio.create_subprocess_exec(arguments.bin, "serve", "-c", config_path,
                                                  stderr=log)
    global RUNNING
    RUNNING = asyncio.Event()
    RUNNING.set()
    counts = Counts()
    stop = asyncio.Event()
    try:
        for _ in range(50):
            if server.returncode is not None:
                sys.exit(f"the server exited ({server.returncode}); see {config_path}.log")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", PORT)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            sys.exit(f"the server did not serve within 5 s; see {config_path}.log")
        echo = await asyncio.start_server(echo_client, "127.0.0.1", 0, backlog=4096)
        sink = await asyncio.start_server(sink_that_never_reads, "127.0.0.1", 0)
        echo_port = echo.sockets[0].getsockname()[1]
        sink_port = sink.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
        udp_port = udp.get_extra_info("sockname")[1]

        tasks = [asyncio.create_task(connect_churn(echo_port, counts, stop))
                 for _ in range(arguments.churn)]
        tasks += [asyncio.create_task(long_session(echo_port, counts, stop)) for _ in range(8)]
        tasks += [asyncio.create_task(udp_rounds(udp_port, counts, stop)) for _ in range(4)]
        tasks.append(asyncio.create_task(bind_rounds(counts, stop)))

        faults = [("resets", fault_resets), ("half handshakes", fault_half_handshakes),
                  ("garbage", fault_garbage),
                  ("stalled target", lambda: fault_stalled_target(sink_port)),
                  ("refused targets", fault_refused_targets),
                  ("vanishing associations", fault_vanishing_associations)]
        async def idle_sample():
            # The churn paused, the faults over, the long sessions still open: what the
            # server holds at rest, the same state at the warm-up and at the end.
            RUNNING.clear()
            if fault_task:
                await asyncio.wait([fault_task], timeout=30)
            await asyncio.sleep(4)
            sample = (time.monotonic() - started, rss(server.pid), descriptors(server.pid))
            RUNNING.set()
            return sample

        started = time.monotonic()
        end = started + arguments.minutes * 60
        # The idle baseline is taken once every fault has come round once (or at half the
        # run, if shorter): each raises the allocator's high-water mark the first time, and
        # what must stay flat is what comes after.
        baseline_at = started + min(60 * (1 + len(faults)) + 10, arguments.minutes * 30)
        baseline = None
        samples = []
        reloads = 0
        next_reload = started + 10
        next_fault = started + 60
        next_sample = started
        fault_index = 0
        fault_task = None
        while time.monotonic() < end:
            now = time.monotonic()
            if baseline is None and now >= baseline_at:
                baseline = await idle_sample()
                print(f"  idle baseline: rss {baseline[1] / 1e6:.1f} MB, fds {baseline[2]}",
                      flush=True)
                continue
            if now >= next_sample:
                sample = (now - started, rss(server.pid), descriptors(server.pid))
                samples.append(sample)
                print(f"{sample[0]:7.0f} s  rss {sample[1] / 1e6:6.1f} MB  fds {sample[2]:5d}  "
                      f"ok {sum(counts.ok.values()):8d}  failed {sum(counts.failed.values())}",
                      flush=True)
                next_sample += 10
            if now >= next_reload:
                reloads += 1
                with open(config_path + ".new", "w") as config:
                    config.write(config_text(reloads))
                os.replace(config_path + ".new", config_path)
                server.send_signal(signal.SIGHUP)
                next_reload += 10
            if now >= next_fault and (fault_task is None or fault_task.done()):
                name, fault = faults[fault_index % len(faults)]
                fault_index += 1
                print(f"  fault: {name}", flush=True)
                fault_task = asyncio.create_task(fault())
                next_fault += 60
            await asyncio.sleep(0.5)
        final = await idle_sample()
        stop.set()
        RUNNING.set()
        await asyncio.wait(tasks, timeout=20)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        await server.wait()
        log.close()

    warm = baseline or samples[-1]
    peak = max(samples, key=lambda sample: sample[1])
    growth = (final[1] - warm[1]) / warm[1] * 100
    with open(config_path + ".log") as text:
        logged = text.read()
    reloaded = logged.count("configuration reloaded")
    refused = logged.count("configuration not reloaded")
    print()
    print(f"ran {arguments.minutes} min: " + ", ".join(
        f"{kind} {count:,}" for kind, count in sorted(counts.ok.items())))
    # A file watcher may reload once more per change than the signals asked: at least.
    print(f"failed: {counts.failed or 'none'}; reloads asked {reloads}, done {reloaded}, "
          f"refused {refused}; faults {fault_index}")
    second_half = [sample for sample in samples if sample[0] >= arguments.minutes * 30]
    if second_half:
        print(f"server memory over the second half, under load: "
              f"{min(s[1] for s in second_half) / 1e6:.1f}-"
              f"{max(s[1] for s in second_half) / 1e6:.1f} MB")
    print(f"server memory at rest after warm-up ({warm[0]:.0f} s) {warm[1] / 1e6:.1f} MB, "
          f"peak under load {peak[1] / 1e6:.1f} MB at {peak[0]:.0f} s, at rest at the end "
          f"{final[1] / 1e6:.1f} MB ({growth:+.1f} %)")
    print(f"descriptors at rest after warm-up {warm[2]}, at rest at the end {final[2]}")
    healthy = (not counts.failed and growth <= arguments.max_growth and final[2] <= warm[2]
               and reloaded >= reloads and not refused)
    print("flat" if healthy else "NOT FLAT or failures: see above")
    return 0 if healthy else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--bin", default="target/release/socksgate")
    parser.add_argument("--churn", type=int, default=16, help="CONNECT churn workers")
    parser.add_argument("--max-growth", type=float, default=10.0)
    arguments = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.exit(asyncio.run(soak(arguments)))


if __name__ == "__main__":
    main()
