/*
 * my_timer.h: the C interface of libmy_timer, the timer library built with
 * its cargo feature `serve`:
 *
 *     cargo build -p timer --features serve
 *
 * gives target/debug/libmy_timer.so (libmy_timer.dylib on macOS,
 * my_timer.dll with its import library my_timer.dll.lib on Windows).
 *
 * Kept by hand, not generated: it declares one function, whose Rust
 * definition is `my_timer_serve` in timer/src/serve.rs. Change both together;
 * the end-to-end test tests/tests/c_host.rs compiles a host against this
 * header and runs it.
 */
#ifndef MY_TIMER_H
#define MY_TIMER_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Serves the library's procs on `address` and blocks until SIGTERM or
 * Ctrl-C stops the server, which first answers the requests it has read.
 *
 * `address` is "tcp:HOST:PORT" (port 0 picks a free port; IPv6 hosts in
 * brackets) or "unix:PATH". Once bound, prints "listening on ADDRESS" (with
 * the real port) on stdout.
 *
 * The server's limits come from the environment: RPC_MAX_FRAME,
 * RPC_MAX_IN_FLIGHT, RPC_MAX_IN_FLIGHT_BYTES, RPC_MAX_WRITE_BACKLOG,
 * RPC_MAX_CONNECTIONS, RPC_IDLE_TIMEOUT_MS, RPC_DRAIN_TIMEOUT_MS and
 * RPC_MAX_EVENT_QUEUE (whole numbers; unset means the documented default,
 * see the README).
 *
 * Returns 0 after a graceful stop; 2 when `address` is NULL, not UTF-8,
 * malformed, or a unix address on a platform without unix sockets, or when
 * an RPC_* limit is invalid; 1 when serving fails (the address cannot be
 * bound, say). Every failure prints one line "my_timer_serve: ..." on
 * stderr. A panic inside the library never unwinds into the caller.
 */
int my_timer_serve(const char *address);

#ifdef __cplusplus
}
#endif

#endif /* MY_TIMER_H */
