//! Helpers for the end-to-end tests: build and spawn the real binaries, and
//! a blocking client that speaks the frame format from the contract alone.
//!
//! # Layout
//!
//! - [`binary`]: the path of a workspace binary, built once per test process;
//! - [`ServerProcess`]: a spawned `serve_host` (or the program in
//!   `TIMER_SERVE_HOST`, or any host of the library), its address, its log lines;
//! - [`Conn`]: a blocking connection with raw frame access;
//! - [`cbor`], [`decode`], [`map`]: CBOR values for payloads and replies;
//! - [`fuzz`]: the fuzz targets' bodies, replayed on their corpora by the tests;
//! - [`tls`]: certificates made at run time; the `contract_tls` suite (or
//!   `TESTS_TRANSPORT=tls`) runs the TCP helpers ([`ServerProcess::tcp`], [`Conn`]) over TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use ciborium::Value;

pub mod fuzz;
pub mod tls;

/// How long any single wait in a test may take before it fails: a guard
/// against hangs, never a synchronisation.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The path of a binary of the workspace, built (debug profile) once per test
/// process so that the tests never run a stale one.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        cargo(&[
            "build",
            "--quiet",
            "-p",
            "examples",
            "-p",
            "client",
            "-p",
            "typed_client",
            "-p",
            "rpc-cli",
            "--bins",
        ]);
        target_dir().join("debug")
    });
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `cargo ARGS` in the workspace, asserts that it succeeds, and returns
/// what it printed on stdout.
pub fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

/// The file name of the timer's C library here: `libmy_timer.so`,
/// `libmy_timer.dylib` or `my_timer.dll`.
pub fn c_library_name() -> String {
    format!(
        "{}my_timer{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the timer's C library with the `serve` feature (debug profile)
/// and returns its path.
pub fn build_serve_library() -> PathBuf {
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "timer",
        "--lib",
        "--features",
        "serve",
    ]);
    target_dir().join("debug").join(c_library_name())
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The server program the tests spawn: `serve_host`, or the program named by
/// `TIMER_SERVE_HOST` (the C host runs the conformance suite this way).
pub fn serve_host() -> PathBuf {
    match std::env::var_os("TIMER_SERVE_HOST") {
        Some(program) => PathBuf::from(program),
        None => binary("serve_host"),
    }
}

/// A spawned host of the library ([`serve_host`] unless told otherwise),
/// killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on, with the real port.
    pub address: String,
    logs: Receiver<String>,
    open: Arc<OpenConnections>,
    _stdout: BufReader<ChildStdout>,
    _dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts `serve_host ADDRESS` with `RUST_LOG=rpc_core=debug` and waits
    /// for its `listening on` line.
    pub fn start(address: &str) -> Self {
        Self::spawn(&serve_host(), address)
    }

    /// Starts `program ADDRESS`, any host of the library (the C host, say),
    /// like [`start`](Self::start).
    pub fn spawn(program: &Path, address: &str) -> Self {
        Self::start_in(program, address, None, &[])
    }

    /// A server on a free TCP port of 127.0.0.1 with extra environment
    /// variables (`RPC_*` limits, or `RUST_LOG` to override the default).
    /// Over TLS ([`ServerProcess::tls_with_env`]) where [`tls::transport_is_tls`].
    pub fn tcp_with_env(env: &[(&str, &str)]) -> Self {
        if tls::transport_is_tls() {
            return Self::tls_with_env(env);
        }
        Self::start_in(&serve_host(), "tcp:127.0.0.1:0", None, env)
    }

    /// A server on a free TCP port of 127.0.0.1 (over TLS with
    /// [`tls::transport_is_tls`]).
    pub fn tcp() -> Self {
        Self::tcp_with_env(&[])
    }

    /// A `tls:` server on a free port of 127.0.0.1 presenting
    /// [`tls::shared`]'s server certificate, with extra environment variables
    /// (which may override `RPC_TLS_CERT` and `RPC_TLS_KEY`).
    pub fn tls_with_env(env: &[(&str, &str)]) -> Self {
        let files = tls::shared().server_env();
        let mut all: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        Self::start_in(&serve_host(), "tls:127.0.0.1:0", None, &all)
    }

    /// A server on a unix socket in a fresh temporary directory.
    #[cfg(unix)]
    pub fn unix() -> Self {
        Self::spawn_unix(&serve_host())
    }

    /// `program` on a unix socket in a fresh temporary directory.
    #[cfg(unix)]
    pub fn spawn_unix(program: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = format!("unix:{}", dir.path().join("timer.sock").display());
        Self::start_in(program, &address, Some(dir), &[])
    }

    /// [`serve_host`] `ADDRESS` under the file mode mask `umask` (`"022"`,
    /// set by `sh` before it execs the server), with extra environment
    /// variables.
    #[cfg(unix)]
    pub fn start_with_umask(address: &str, umask: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("sh");
        command.args(["-c", "umask \"$0\" && exec \"$1\" \"$2\"", umask]);
        command.arg(serve_host()).arg(address);
        Self::start_command(command, None, env)
    }

    fn start_in(
        program: &Path,
        address: &str,
        dir: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(program);
        command.arg(address);
        Self::start_command(command, dir, env)
    }

    fn start_command(
        mut command: Command,
        dir: Option<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Self {
        let program = PathBuf::from(command.get_program());
        let mut child = command
            .env("RUST_LOG", "rpc_core=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let open = Arc::new(OpenConnections::default());
        let logs = forward_lines(
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&open),
        );
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("serve_host prints a line");
        let address = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {:?}", drain(&logs)))
            .to_owned();
        ServerProcess {
            child,
            address,
            logs,
            open,
            _stdout: stdout,
            _dir: dir,
        }
    }

    /// A new connection to the server.
    pub fn connect(&self) -> Conn {
        Conn::connect(&self.address)
    }

    /// Waits until a log line (stderr) contains every one of `needles`, and returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self
                .logs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no log line with {needles:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited before logging {needles:?}")
                }
            }
        }
    }

    /// Every log line (stderr) up to and including the first that contains
    /// every one of `needles`.
    pub fn log_lines_until(&self, needles: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            match self
                .logs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let done = needles.iter().all(|n| line.contains(n));
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no log line with {needles:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited before logging {needles:?}")
                }
            }
        }
    }

    /// The log lines (stderr) that arrived since the last look, without waiting.
    pub fn new_log_lines(&self) -> Vec<String> {
        drain(&self.logs)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the server's debug log shows exactly `n` connections
    /// open (every other one it accepted has logged its close), and so
    /// has finished or dropped their work. Needs `rpc_core=debug` logs.
    pub fn wait_for_open_connections(&self, n: i64) {
        let (count, changed) = (&self.open.count, &self.open.changed);
        let guard = count.lock().expect("lock");
        let (guard, timeout) = changed
            .wait_timeout_while(guard, PATIENCE, |open| *open != n)
            .expect("lock");
        assert!(
            !timeout.timed_out(),
            "{} connections open, expected {n}",
            *guard
        );
    }

    /// Sends SIGTERM and waits for the process to exit.
    #[cfg(unix)]
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.wait()
    }

    /// Waits for the process to exit (at most [`PATIENCE`]).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "serve_host did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connections opened minus connections closed, as the server logs them.
#[derive(Default)]
struct OpenConnections {
    count: Mutex<i64>,
    changed: Condvar,
}

fn forward_lines(
    stream: impl Read + Send + 'static,
    open: Arc<OpenConnections>,
) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let delta = if line.contains("connection opened") {
                1
            } else if line.contains("connection closed") || line.contains("connection failed") {
                -1
            } else {
                0
            };
            if delta != 0 {
                *open.count.lock().expect("lock") += delta;
                open.changed.notify_all();
            }
            eprintln!("[serve_host] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn drain(rx: &Receiver<String>) -> Vec<String> {
    rx.try_iter().collect()
}

/// Runs a program to completion and returns its exit status, stdout and stderr.
pub fn run(program: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("program runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// A blocking connection speaking raw frames.
pub struct Conn {
    stream: Stream,
}

impl Conn {
    /// Connects to `tcp:HOST:PORT`, `tls:HOST:PORT` (trusting
    /// [`tls::shared`]'s CA, no client certificate) or `unix:PATH`, with
    /// reads and writes bounded by [`PATIENCE`].
    pub fn connect(address: &str) -> Conn {
        if address.starts_with("tls:") {
            return Self::connect_tls(address, tls::shared().client_config(None))
                .expect("TLS handshake");
        }
        let stream = if let Some(host_port) = address.strip_prefix("tcp:") {
            Stream::Tcp(tcp_connect(host_port))
        } else {
            #[cfg(unix)]
            {
                let path = address
                    .strip_prefix("unix:")
                    .expect("tcp: or unix: address");
                let s = UnixStream::connect(path).expect("unix connect");
                s.set_read_timeout(Some(PATIENCE)).expect("timeout");
                s.set_write_timeout(Some(PATIENCE)).expect("timeout");
                Stream::Unix(s)
            }
            #[cfg(not(unix))]
            panic!("unix addresses need a unix platform: {address}")
        };
        Conn { stream }
    }

    /// Connects to `tls:HOST:PORT` with `config` and completes the
    /// handshake, checking the certificate against HOST; the handshake's
    /// error (a refused certificate, an alert) otherwise.
    pub fn connect_tls(address: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<Conn> {
        let host_port = address.strip_prefix("tls:").expect("a tls: address");
        let (host, _) = host_port.rsplit_once(':').expect("HOST:PORT");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("server name");
        let mut session = rustls::ClientConnection::new(config, name).expect("TLS session");
        let mut sock = tcp_connect(host_port);
        while session.is_handshaking() {
            session.complete_io(&mut sock)?;
        }
        Ok(Conn {
            stream: Stream::Tls(Box::new(rustls::StreamOwned::new(session, sock))),
        })
    }

    fn io(&mut self) -> &mut dyn ReadWrite {
        match &mut self.stream {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.as_mut(),
            #[cfg(unix)]
            Stream::Unix(s) => s,
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.io().write_all(bytes).expect("write");
    }

    /// Writes one request frame.
    pub fn send(&mut self, method: &[u8], payload: &[u8]) {
        self.send_raw(&frame(method, payload));
    }

    /// Reads one response frame: status and body.
    pub fn recv(&mut self) -> (i32, Vec<u8>) {
        let mut head = [0u8; 8];
        self.io().read_exact(&mut head).expect("read reply header");
        let status = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut body = vec![0; len];
        self.io().read_exact(&mut body).expect("read reply body");
        (status, body)
    }

    /// Writes one multiplexed request frame (after `rpc.hello`).
    pub fn send_mux(&mut self, id: u32, timeout_ms: u32, method: &str, payload: &Value) {
        let payload = cbor(payload);
        let mut out = Vec::with_capacity(16 + method.len() + payload.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&timeout_ms.to_be_bytes());
        out.extend_from_slice(&(method.len() as u32).to_be_bytes());
        out.extend_from_slice(method.as_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        self.send_raw(&out);
    }

    /// Reads one multiplexed response frame: id, status and body.
    pub fn recv_mux(&mut self) -> (u32, i32, Vec<u8>) {
        let mut head = [0u8; 12];
        self.io().read_exact(&mut head).expect("read reply header");
        let word = |at: usize| [head[at], head[at + 1], head[at + 2], head[at + 3]];
        let id = u32::from_be_bytes(word(0));
        let status = i32::from_be_bytes(word(4));
        let len = u32::from_be_bytes(word(8)) as usize;
        let mut body = vec![0; len];
        self.io().read_exact(&mut body).expect("read reply body");
        (id, status, body)
    }

    /// One round trip with a raw payload.
    pub fn call_raw(&mut self, method: &[u8], payload: &[u8]) -> (i32, Vec<u8>) {
        self.send(method, payload);
        self.recv()
    }

    /// One round trip: the decoded CBOR of status 0, or the text of status 1.
    pub fn call(&mut self, method: &str, payload: &Value) -> Result<Value, String> {
        match self.call_raw(method.as_bytes(), &cbor(payload)) {
            (0, body) => Ok(decode(&body)),
            (1, body) => Err(String::from_utf8(body).expect("error text is UTF-8")),
            (status, body) => panic!("unexpected status {status}: {body:?}"),
        }
    }

    /// Asserts the server closed the connection (end of stream, or reset).
    pub fn expect_closed(&mut self) {
        let mut byte = [0u8; 1];
        match self.io().read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("expected the connection to be closed, got data"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            // TLS: the TCP connection closed without a close_notify.
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && matches!(self.stream, Stream::Tls(_)) => {}
            Err(e) => panic!("expected the connection to be closed: {e}"),
        }
    }

    /// Asserts the server refused or closed a TLS connection: end of
    /// stream, a reset, or a TLS alert (a refused client certificate).
    pub fn expect_closed_or_alert(&mut self) {
        let mut byte = [0u8; 1];
        match self.io().read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("expected the connection to be refused, got data"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::InvalidData
                ),
                "expected a refusal: {e}"
            ),
        }
    }

    /// The DER of the server's leaf certificate, for a `tls:` connection.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Tls(s) => s
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.to_vec()),
            _ => None,
        }
    }

    /// The TCP socket, for options a test needs (none for a unix socket;
    /// the socket under TLS).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match &self.stream {
            Stream::Tcp(s) => Some(s),
            Stream::Tls(s) => Some(&s.sock),
            #[cfg(unix)]
            Stream::Unix(_) => None,
        }
    }

    /// Closes the writing half (the server sees end of stream; TLS sends
    /// its close_notify first).
    pub fn shutdown_write(&mut self) {
        match &mut self.stream {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write).expect("shutdown"),
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                s.flush().expect("close_notify");
                s.sock
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shutdown");
            }
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write).expect("shutdown"),
        }
    }
}

fn tcp_connect(host_port: &str) -> TcpStream {
    let s = TcpStream::connect(host_port).expect("tcp connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.set_write_timeout(Some(PATIENCE)).expect("timeout");
    s
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One request frame.
pub fn frame(method: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + method.len() + payload.len());
    out.extend_from_slice(&(method.len() as u32).to_be_bytes());
    out.extend_from_slice(method);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a CBOR value (definite lengths).
pub fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("encodes");
    out
}

/// Decodes exactly one CBOR value.
pub fn decode(bytes: &[u8]) -> Value {
    let mut rest = bytes;
    let value = ciborium::de::from_reader(&mut rest).expect("valid CBOR");
    assert!(rest.is_empty(), "trailing bytes after the CBOR item");
    value
}

/// A CBOR map with text keys, in the given order.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.into()), v))
            .collect(),
    )
}

/// A CBOR array of text values.
pub fn texts(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::Text((*s).into())).collect())
}

/// The `{"req": {"message": m, "delayMs": d}}` payload of `echo`.
pub fn echo_args(message: &str, delay_ms: i64) -> Value {
    map([(
        "req",
        map([("message", message.into()), ("delayMs", delay_ms.into())]),
    )])
}
