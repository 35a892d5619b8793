#!/usr/bin/env python3
"""Memory benchmark: the server's VmRSS idle, with N idle connections held
open, and after they close; with --load, the loads of the memory limits.

usage: bench/memory.py [SERVER_BIN] [--conns N] [--requests]
       bench/memory.py [SERVER_BIN] --load [--rpc RPC_BIN]

Starts SERVER_BIN (default target/release/serve_host) on a free 127.0.0.1
port with the file limit raised for both sides, opens N connections (10 000
by default; with --requests each first makes one `version` call, so that its
buffers exist), and reads VmRSS from /proc at each stage. Linux only.

--load runs, each on a fresh server: (1) 4 subscribers that never read plus
300 echoes of 1 MiB from another connection; (2) RPC_MAX_MEMORY=33554432,
32 connections each pipelining 64 echoes of 64 KiB with delayMs 2000 and
never reading, plus 16 stalled partial 4 MiB frames, while another client
makes 100 small echoes (its latencies reported); (3) `rpc listen` (RPC_BIN,
default target/release/rpc) through an echo of a maximum request. It prints
VmHWM, and VmRSS idle and over the 10 s after everything closed.
"""
import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))

def wait_until(cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)

def frame(method, payload):
    return struct.pack(">I", len(method)) + method + struct.pack(">I", len(payload)) + payload

def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for code, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | code]) + struct.pack(fmt, n)

def cbor_text(t):
    b = t.encode()
    return cbor_head(3, len(b)) + b

def echo_payload(message, delay_ms=0):
    # {"req": {"message": M, "delayMs": D}}
    return (b"\xa1" + cbor_text("req") + b"\xa2" + cbor_text("message") + cbor_text(message)
            + cbor_text("delayMs") + cbor_head(0, delay_ms))

def recv_frame(s):
    head = recv_exact(s, 8)
    status, n = struct.unpack(">iI", head)
    return status, recv_exact(s, n)

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)

def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")

class Server:
    def __init__(self, binary, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([binary, "tcp:127.0.0.1:0"], stdout=subprocess.PIPE,
                                     text=True, env=e)
        line = self.proc.stdout.readline()
        self.address = line.strip().removeprefix("listening on ")
        host, port = self.address.removeprefix("tcp:").rsplit(":", 1)
        self.host_port = (host, int(port))
        self.base_fds = open_fds(self.proc.pid)
        time.sleep(0.3)
        self.idle = vm_kib(self.proc.pid, "VmRSS")

    def connect(self):
        s = socket.create_connection(self.host_port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def hwm(self):
        return vm_kib(self.proc.pid, "VmHWM")

    def rss(self):
        return vm_kib(self.proc.pid, "VmRSS")

    def after_close(self, within=10.0):
        """Waits for every connection to close; then VmRSS each 0.5 s for `within` s."""
        wait_until(lambda: open_fds(self.proc.pid) <= self.base_fds, "every connection to close")
        start = time.monotonic()
        samples = []
        reached = None
        while time.monotonic() - start < within:
            rss = self.rss()
            t = time.monotonic() - start
            samples.append((t, rss))
            if reached is None and rss <= self.idle + 16 * 1024:
                reached = t
            time.sleep(0.5)
        return samples, reached

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)

def report_close(server, samples, reached):
    last = samples[-1][1]
    print(f"  VmRSS idle {server.idle / 1024:.1f} MiB; after close: "
          + ", ".join(f"{t:.1f}s {r / 1024:.1f}" for t, r in samples[::4]) + " MiB")
    verdict = f"within idle + 16 MiB after {reached:.1f} s" if reached is not None else "NOT within idle + 16 MiB"
    print(f"  VmRSS at 10 s: {last / 1024:.1f} MiB ({verdict})")

def subscribe(s):
    # {"events": ["on_echo_fired"]}
    s.sendall(frame(b"rpc.subscribe", b"\xa1" + cbor_text("events") + b"\x81" + cbor_text("on_echo_fired")))
    status, _ = recv_frame(s)
    assert status == 0, status

def pusher(s, data):
    def run():
        try:
            s.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t

def close_all(socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

def load_subscribers(binary):
    print("(1) 4 subscribers that never read + 300 echoes of 1 MiB from another connection")
    server = Server(binary)
    try:
        subs = [server.connect() for _ in range(4)]
        for s in subs:
            subscribe(s)
        client = server.connect()
        payload = echo_payload("m" * (1 << 20))
        for _ in range(300):
            client.sendall(frame(b"echo", payload))
            status, _ = recv_frame(client)
            assert status == 0, status
        print(f"  VmHWM {server.hwm() / 1024:.1f} MiB, VmRSS {server.rss() / 1024:.1f} MiB")
        close_all(subs + [client])
        report_close(server, *server.after_close())
    finally:
        server.stop()

def load_hogs(binary):
    print("(2) RPC_MAX_MEMORY=33554432: 32 connections pipelining 64 echoes of 64 KiB (delayMs 2000), never reading,"
          " + 16 stalled partial 4 MiB frames, + a good client's 100 small echoes")
    server = Server(binary, {"RPC_MAX_MEMORY": "33554432"})
    try:
        socks = []
        slow = frame(b"echo", echo_payload("h" * 65536, 2000)) * 64
        for _ in range(32):
            s = server.connect()
            socks.append(s)
            pusher(s, slow)
        big = frame(b"echo", echo_payload("p" * (4 * 1024 * 1024 - 64)))
        for _ in range(16):
            s = server.connect()
            socks.append(s)
            pusher(s, big[:-1])  # all but the last byte
        started = time.monotonic()
        time.sleep(0.5)
        good = server.connect()
        held = server.rss()
        latencies = []
        for i in range(100):
            t = time.monotonic()
            good.sendall(frame(b"echo", echo_payload(f"good {i}")))
            status, _ = recv_frame(good)
            latencies.append((time.monotonic() - t) * 1000)
            assert status == 0, status
        print(f"  VmRSS when the good client started: {held / 1024:.1f} MiB, when it ended: {server.rss() / 1024:.1f} MiB")
        # Past the hogs' delays: their replies exist.
        time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"  good client: 100/100 answered, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms")
        print(f"  VmHWM {server.hwm() / 1024:.1f} MiB, VmRSS {server.rss() / 1024:.1f} MiB")
        close_all(socks + [good])
        report_close(server, *server.after_close())
    finally:
        server.stop()

def load_listen(binary, rpc):
    print("(3) `rpc listen` through the echo of a maximum request")
    server = Server(binary)
    try:
        listen = subprocess.Popen([rpc, "listen", server.address, "on_echo_fired"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        listen.stderr.readline()  # the subscription's reply
        overhead = len(echo_payload("")) - 1 + 5
        message = "x" * (4 * 1024 * 1024 - 4 - overhead)
        payload = echo_payload(message)
        assert 4 + len(payload) == 4 * 1024 * 1024
        s = server.connect()
        s.sendall(frame(b"echo", payload))
        status, body = recv_frame(s)
        print(f"  echo of a request of exactly 4 MiB: status {status}, reply body {len(body)} bytes")
        s.sendall(frame(b"echo", echo_payload("next")))
        recv_frame(s)
        first = listen.stdout.readline()
        second = listen.stdout.readline().strip()
        alive = listen.poll() is None
        print(f"  rpc listen printed a line of {len(first)} bytes, then: {second}")
        print(f"  rpc listen still running: {alive}")
        listen.terminate()
        listen.wait(timeout=10)
        s.close()
    finally:
        server.stop()

def main():
    args = sys.argv[1:]
    if "--load" in args:
        args.remove("--load")
        rpc = "target/release/rpc"
        if "--rpc" in args:
            i = args.index("--rpc")
            rpc = args[i + 1]
            del args[i:i + 2]
        binary = args[0] if args else "target/release/serve_host"
        load_subscribers(binary)
        load_hogs(binary)
        load_listen(binary, rpc)
        return
    conns = 10_000
    if "--conns" in args:
        i = args.index("--conns")
        conns = int(args[i + 1])
        del args[i:i + 2]
    requests = "--requests" in args
    args = [a for a in args if a != "--requests"]
    server = args[0] if args else "target/release/serve_host"

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = conns + 100
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(f"the hard file limit ({hard}) is below {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    proc = subprocess.Popen([server, "tcp:127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        host, port = line.strip().removeprefix("listening on tcp:").rsplit(":", 1)
        base_fds = open_fds(proc.pid)
        time.sleep(0.2)
        idle = rss_kib(proc.pid)

        version = b"\x00\x00\x00\x07version\x00\x00\x00\x01\xa0"
        socks = []
        for _ in range(conns):
            s = socket.create_connection((host, int(port)))
            if requests:
                s.sendall(version)
                head = s.recv(8, socket.MSG_WAITALL)
                status, n = struct.unpack(">iI", head)
                body = s.recv(n, socket.MSG_WAITALL)
                assert status == 0 and body == b"\x70nim-timer v0.1.0", (status, body)
            socks.append(s)
        wait_until(lambda: open_fds(proc.pid) >= base_fds + conns, "the server to accept every connection")
        time.sleep(0.5)
        held = rss_kib(proc.pid)

        for s in socks:
            s.close()
        wait_until(lambda: open_fds(proc.pid) <= base_fds, "the server to close every connection")
        time.sleep(0.5)
        after = rss_kib(proc.pid)

        kind = "after one request each" if requests else "never sending"
        print(f"connections: {conns} ({kind})")
        print(f"VmRSS idle:          {idle / 1024:7.1f} MiB")
        print(f"VmRSS {conns} held:  {held / 1024:7.1f} MiB  ({(held - idle) * 1024 / conns:.0f} bytes per connection)")
        print(f"VmRSS after close:   {after / 1024:7.1f} MiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

if __name__ == "__main__":
    main()
