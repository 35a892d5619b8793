//! `loadgen ADDRESS --scenario NAME [...]`: N connections, each keeping D
//! requests in flight, for a warm-up then a measured window; prints one JSON
//! line with req/s, p50/p99/max latency (request written to reply read) and,
//! given `--server-pid`, the server's CPU µs per request from
//! `/proc/PID/stat`. Exits 1 if any reply was wrong or none came.
//! `--multiplex` negotiates the multiplexing extension (`rpc.hello`) on
//! each connection first and sends frames with call ids.
//! `loadgen ADDRESS --probe` exits 0 once ADDRESS accepts a connection.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rpc_bench::{echo_payload, echoed, push_request, Addr, VERSION_REPLY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{sleep, timeout_at, Instant};

/// The workloads of BENCHMARKS.md: method, connections, depth, message size.
#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// echo, 1 connection, 1 in flight: the round trip.
    Latency,
    /// echo, 16 connections, 1 in flight each.
    FanIn,
    /// echo, 1 connection, 32 in flight.
    Pipelined,
    /// version, 4 connections, 8 in flight each.
    Version,
    /// echo with 64 KiB messages, 4 connections, 4 in flight each.
    Large,
    /// echo, 256 connections, 1 in flight each.
    Crowd,
}

impl Scenario {
    /// (method, connections, depth, message bytes).
    fn preset(self) -> (Method, usize, usize, usize) {
        match self {
            Scenario::Latency => (Method::Echo, 1, 1, 19),
            Scenario::FanIn => (Method::Echo, 16, 1, 19),
            Scenario::Pipelined => (Method::Echo, 1, 32, 19),
            Scenario::Version => (Method::Version, 4, 8, 0),
            Scenario::Large => (Method::Echo, 4, 4, 64 * 1024),
            Scenario::Crowd => (Method::Echo, 256, 1, 19),
        }
    }
}

/// The method called.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Method {
    /// `version` with payload `{}`.
    Version,
    /// `echo` with `{"req": {"message": "x"*B, "delayMs": 0}}`.
    Echo,
}

/// The command line.
#[derive(Parser)]
#[command(about = "Pipelined load for a server of the framing; prints one JSON line")]
struct Args {
    /// tcp:HOST:PORT or tls:HOST:PORT (loopback only), or unix:PATH
    address: String,
    /// tls: the CA certificate (PEM) the server's certificate chains to.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Connect once and exit 0 if the server accepts.
    #[arg(long)]
    probe: bool,
    /// The workload; the flags below override its parts.
    #[arg(long, value_enum, default_value = "fan-in")]
    scenario: Scenario,
    /// The method called.
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Connections.
    #[arg(long)]
    conns: Option<usize>,
    /// Requests in flight per connection.
    #[arg(long)]
    depth: Option<usize>,
    /// Bytes of the echo message.
    #[arg(long)]
    message_bytes: Option<usize>,
    /// Seconds measured, after a 0.5 s warm-up.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// The server process, for its CPU time per request.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the server in the JSON line.
    #[arg(long, default_value = "server")]
    label: String,
    /// Runtime threads (1: a current-thread runtime, one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Negotiate multiplexing (`rpc.hello`) and send frames with call ids.
    #[arg(long)]
    multiplex: bool,
}

/// Before the window, in it, after it.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// What one connection saw in the window.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    /// Latencies in nanoseconds.
    latencies: Vec<u64>,
    /// Why the connection ended early, if it did.
    failure: Option<String>,
}

/// One connection's fixed workload.
struct Load {
    request: Vec<u8>,
    method: Method,
    /// The echo message's CBOR text item, which the reply must carry back.
    message: Vec<u8>,
    depth: usize,
    /// Multiplexed frames: `[u32 id][u32 timeout_ms]` before each request,
    /// `[u32 id]` before each reply.
    multiplex: bool,
}

fn main() {
    let args = Args::parse();
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn run(args: Args) -> Result<i32, String> {
    let addr = Addr::parse(&args.address)?;
    if let Addr::Tcp(hostport) | Addr::Tls(hostport) = &addr {
        // A load generator must never be pointed at someone else's machine.
        let host = hostport.rsplit_once(':').map_or("", |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("{hostport}: only loopback addresses are allowed"));
        }
    }
    let tls = match (&addr, &args.ca) {
        (Addr::Tls(_), Some(ca)) => Some(tls_connector(ca)?),
        (Addr::Tls(_), None) => return Err("a tls: address needs --ca".to_owned()),
        _ => None,
    };
    let addr = Target { addr, tls };
    let runtime = rpc_bench::runtime(args.threads).map_err(|e| e.to_string())?;
    if args.probe {
        return Ok(if runtime.block_on(connect(&addr)).is_ok() {
            0
        } else {
            1
        });
    }
    runtime.block_on(measure(args, addr))
}

async fn measure(args: Args, addr: Target) -> Result<i32, String> {
    let (method, conns, depth, bytes) = args.scenario.preset();
    let method = args.method.unwrap_or(method);
    let conns = args.conns.unwrap_or(conns).max(1);
    let depth = args.depth.unwrap_or(depth).max(1);
    let bytes = args.message_bytes.unwrap_or(bytes);
    let (payload, message) = echo_payload(bytes);
    let mut request = Vec::new();
    match method {
        Method::Version => push_request("version", b"\xa0", &mut request),
        Method::Echo => push_request("echo", &payload, &mut request),
    }
    let load = Arc::new(Load {
        request,
        method,
        message,
        depth,
        multiplex: args.multiplex,
    });
    let phase = Arc::new(AtomicU8::new(WARMING));
    let warm_up = Duration::from_millis(500);
    let window = Duration::from_secs_f64(args.seconds);
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut stream = connect(&addr)
            .await
            .map_err(|e| format!("connect {}: {e}", args.address))?;
        if args.multiplex {
            let enabled = match &mut stream {
                Stream::Tcp(s) => hello(s).await,
                Stream::Unix(s) => hello(s).await,
                Stream::Tls(s) => hello(s).await,
            };
            enabled.map_err(|e| format!("rpc.hello to {}: {e}", args.address))?;
        }
        streams.push(stream);
    }
    // The clock starts once every connection is up (256 connects take a while).
    let end = Instant::now() + warm_up + window;
    let mut tasks = Vec::with_capacity(conns);
    for stream in streams {
        let (load, phase) = (load.clone(), phase.clone());
        tasks.push(tokio::spawn(async move {
            match stream {
                Stream::Tcp(s) => drive(s, &load, &phase, end).await,
                Stream::Unix(s) => drive(s, &load, &phase, end).await,
                Stream::Tls(s) => drive(s, &load, &phase, end).await,
            }
        }));
    }
    sleep(warm_up).await;
    let cpu_start = args.server_pid.map(cpu_ticks);
    let started = Instant::now();
    phase.store(MEASURING, Ordering::Relaxed);
    tokio::time::sleep_until(end).await;
    phase.store(DONE, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_end = args.server_pid.map(cpu_ticks);

    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|e| e.to_string())?;
        all.requests += tally.requests;
        all.errors += tally.errors;
        all.latencies.extend(tally.latencies);
        if all.failure.is_none() {
            all.failure = tally.failure;
        }
    }
    all.latencies.sort_unstable();
    let quantile = |q: f64| -> f64 {
        let n = all.latencies.len();
        if n == 0 {
            return 0.0;
        }
        all.latencies[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0
    };
    let cpu_us = match (cpu_start, cpu_end) {
        (Some(Ok(a)), Some(Ok(b))) if all.requests > 0 => {
            format!(
                "{:.3}",
                (b - a) as f64 / clock_ticks_per_second() * 1e6 / all.requests as f64
            )
        }
        _ => "null".to_owned(),
    };
    let transport = match addr.addr {
        Addr::Tcp(_) => "tcp",
        Addr::Tls(_) => "tls",
        Addr::Unix(_) => "unix",
    };
    println!(
        "{{\"label\":\"{}\",\"scenario\":\"{}\",\"transport\":\"{transport}\",\"multiplex\":{},\"method\":\"{}\",\"conns\":{conns},\"depth\":{depth},\"message_bytes\":{bytes},\"seconds\":{elapsed:.3},\"requests\":{},\"errors\":{},\"rps\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"server_cpu_us\":{cpu_us}}}",
        args.label,
        args.scenario.to_possible_value().map_or(String::new(), |v| v.get_name().to_owned()),
        args.multiplex,
        if method == Method::Echo { "echo" } else { "version" },
        all.requests,
        all.errors,
        all.requests as f64 / elapsed,
        quantile(0.5),
        quantile(0.99),
        quantile(1.0),
    );
    if let Some(failure) = &all.failure {
        eprintln!("loadgen: a connection failed: {failure}");
    }
    Ok(
        if all.requests == 0 || all.errors > 0 || all.failure.is_some() {
            1
        } else {
            0
        },
    )
}

/// A connected stream of any kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The address, and for tls: the connector trusting `--ca`.
struct Target {
    addr: Addr,
    tls: Option<tokio_rustls::TlsConnector>,
}

/// A TLS 1.3/1.2 client (ring) trusting the CA certificates in `ca`.
fn tls_connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn connect(target: &Target) -> io::Result<Stream> {
    Ok(match &target.addr {
        Addr::Tcp(hostport) => {
            let stream = TcpStream::connect(hostport).await?;
            stream.set_nodelay(true)?;
            Stream::Tcp(stream)
        }
        Addr::Tls(hostport) => {
            let stream = TcpStream::connect(hostport).await?;
            stream.set_nodelay(true)?;
            let host = hostport.rsplit_once(':').map_or("", |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let connector = target.tls.as_ref().ok_or(io::ErrorKind::InvalidInput)?;
            Stream::Tls(Box::new(connector.connect(name, stream).await?))
        }
        Addr::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
    })
}

/// Asks for multiplexing; an error unless the server enables it.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    const FEATURES: &[u8] = b"\xa1\x68features\x81\x69multiplex";
    let mut frame = Vec::new();
    push_request("rpc.hello", FEATURES, &mut frame);
    stream.write_all(&frame).await?;
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).await?;
    let len = u32::from_be_bytes(head[4..].try_into().unwrap_or_default()) as usize;
    let mut body = vec![0u8; len.min(4096)];
    stream.read_exact(&mut body).await?;
    if head[..4] != [0; 4] || body != FEATURES {
        return Err(io::Error::other("the server did not enable multiplexing"));
    }
    Ok(())
}

/// Keeps `depth` requests in flight on one connection until `end`: each
/// read's whole replies are counted, then as many requests go out in one write.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    load: &Load,
    phase: &AtomicU8,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(load.depth);
    // Multiplexed: the send time of each call id in flight, and the free ids.
    let mut by_id: Vec<Option<Instant>> = vec![None; load.depth + 1];
    let mut free: Vec<u32> = (1..=load.depth as u32).rev().collect();
    let head_len = if load.multiplex { 12 } else { 8 };
    let mut out = Vec::with_capacity((load.request.len() + 8) * load.depth);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut filled) = (0usize, 0usize);
    let mut replies = load.depth;
    loop {
        out.clear();
        let now = Instant::now();
        for _ in 0..replies {
            if load.multiplex {
                let Some(id) = free.pop() else {
                    return fail(tally, phase, "no free call id".to_owned());
                };
                by_id[id as usize] = Some(now);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
            } else {
                sent.push_back(now);
            }
            out.extend_from_slice(&load.request);
        }
        match timeout_at(end, stream.write_all(&out)).await {
            Err(_) => return tally,
            Ok(Err(e)) => return fail(tally, phase, format!("write: {e}")),
            Ok(Ok(())) => {}
        }
        replies = 0;
        while replies == 0 {
            match timeout_at(end, stream.read(&mut buf[filled..])).await {
                Err(_) => return tally,
                Ok(Ok(0)) => {
                    return fail(tally, phase, "the server closed the connection".to_owned())
                }
                Ok(Err(e)) => return fail(tally, phase, format!("read: {e}")),
                Ok(Ok(n)) => filled += n,
            }
            let measuring = phase.load(Ordering::Relaxed) == MEASURING;
            let arrived = Instant::now();
            let mut needed = 0;
            while filled - start >= head_len {
                let head = &buf[start + head_len - 8..start + head_len];
                let status = i32::from_be_bytes(head[..4].try_into().unwrap());
                let len = u32::from_be_bytes(head[4..].try_into().unwrap()) as usize;
                if filled - start < head_len + len {
                    needed = head_len + len;
                    break;
                }
                let body = &buf[start + head_len..start + head_len + len];
                let at = if load.multiplex {
                    let id = u32::from_be_bytes(buf[start..start + 4].try_into().unwrap());
                    let at = by_id.get_mut(id as usize).and_then(Option::take);
                    if at.is_some() {
                        free.push(id);
                    }
                    at
                } else {
                    sent.pop_front()
                };
                let Some(at) = at else {
                    return fail(tally, phase, "a reply to no request".to_owned());
                };
                if measuring {
                    tally.requests += 1;
                    // Every reply's status, and one body in 64 in full.
                    let wrong = status != 0
                        || (tally.requests % 64 == 1
                            && match load.method {
                                Method::Version => body != VERSION_REPLY,
                                Method::Echo => echoed(body) != Some(&load.message[..]),
                            });
                    if wrong {
                        tally.errors += 1;
                    }
                    tally.latencies.push((arrived - at).as_nanos() as u64);
                }
                start += head_len + len;
                replies += 1;
            }
            buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
            if needed > buf.len() || filled == buf.len() {
                buf.resize(needed.max(buf.len() * 2), 0);
            }
        }
        if phase.load(Ordering::Relaxed) == DONE {
            return tally;
        }
    }
}

/// Records a connection's early end (only inside the window: after it,
/// the server being stopped is expected).
fn fail(mut tally: Tally, phase: &AtomicU8, why: String) -> Tally {
    if phase.load(Ordering::Relaxed) != DONE {
        tally.failure = Some(why);
    }
    tally
}

/// User plus system clock ticks of process `pid`, all its threads.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The command name may hold spaces: the fields counted are after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("bad /proc stat line")
    };
    Ok(field(11)? + field(12)?)
}

/// `getconf CLK_TCK`, or Linux's usual 100.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
