#!/usr/bin/env python3
"""Memory benchmark: the server's VmRSS idle, with N idle connections held
open, and after they close.

usage: bench/memory.py [SERVER_BIN] [--conns N] [--requests]

Starts SERVER_BIN (default target/release/serve_host) on a free 127.0.0.1
port with the file limit raised for both sides, opens N connections (10 000
by default; with --requests each first makes one `version` call, so that its
buffers exist), and reads VmRSS from /proc at each stage. Linux only.
"""
import os
import resource
import socket
import struct
import subprocess
import sys
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

def main():
    args = sys.argv[1:]
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
