//! The library serving itself from C: build `libmy_timer` with `serve`,
//! compile `examples/c/serve_host.c` against `timer/include/my_timer.h` with
//! the system C compiler, and run that host end to end: the reference client
//! over TCP and a unix socket, SIGTERM, bad input, the exported symbol, and
//! the whole conformance suite of `contract.rs`.
//!
//! Unix only: stopping the server with SIGTERM is part of the contract, and
//! Windows has no SIGTERM (nor, on its runners, a `cc`). Where no C compiler
//! exists each test says so and passes.
#![cfg(unix)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::{binary, workspace_root, ServerProcess};

const REFERENCE_EXCHANGE: &str = "[client] version = nim-timer v0.1.0\n[client] echo.echoed= hello over the wire\n[client] echo.timer = ipc-server\n";

/// The C host, compiled in a temporary directory beside a copy of the
/// library it loads: a build of the shared target dir (the plain variant,
/// say) cannot swap the library under a running test. (On macOS the host
/// records the library's install name instead, the absolute path cargo
/// linked it at, so there the copy serves only `nm`.)
struct CHost {
    program: PathBuf,
    library: PathBuf,
    _dir: tempfile::TempDir,
}

impl CHost {
    /// Builds the library and the host, or says why not and returns `None`
    /// when there is no C compiler.
    fn build() -> Option<CHost> {
        let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
        if let Err(e) = Command::new(&cc).arg("--version").output() {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{cc:?}: {e}");
            eprintln!("skipped: no C compiler ({cc:?} not found), so the C host is not tested");
            return None;
        }
        let root = workspace_root();
        let built = tests::build_serve_library();
        let dir = tempfile::tempdir().expect("temp dir");
        let library = dir.path().join(tests::c_library_name());
        std::fs::copy(&built, &library).expect("copy the library");
        let program = dir.path().join("serve_host");
        let out = Command::new(&cc)
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(root.join("timer/include"))
            .arg(root.join("examples/c/serve_host.c"))
            .arg("-o")
            .arg(&program)
            .arg("-L")
            .arg(dir.path())
            .arg("-lmy_timer")
            .arg(format!("-Wl,-rpath,{}", dir.path().display()))
            .output()
            .expect("the C compiler runs");
        assert!(
            out.status.success(),
            "compiling the C host failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(CHost {
            program,
            library,
            _dir: dir,
        })
    }

    /// Runs the host to completion with `args`, without `RUST_LOG`.
    fn run(&self, args: &[&OsStr]) -> Output {
        Command::new(&self.program)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("the C host runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_c_host_serves_the_reference_client_and_stops_on_sigterm() {
    let Some(host) = CHost::build() else { return };
    let servers = [
        ServerProcess::spawn(&host.program, "tcp:127.0.0.1:0"),
        ServerProcess::spawn_unix(&host.program),
    ];
    for server in servers {
        if let Some(port) = server.address.strip_prefix("tcp:127.0.0.1:") {
            assert_ne!(port, "0", "the real port is printed");
        }
        let (status, stdout, stderr) = tests::run(&binary("client"), &[&server.address]);
        assert!(
            status.success(),
            "client failed on {}: {stderr}",
            server.address
        );
        assert_eq!(stdout, REFERENCE_EXCHANGE);
        let status = server.terminate();
        assert_eq!(status.code(), Some(0), "exit status {status:?}");
    }
}

#[test]
fn the_c_host_reports_bad_input_on_one_line() {
    let Some(host) = CHost::build() else { return };

    let out = host.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("usage: serve_host ADDRESS"));

    let out = host.run(&["tcp:nohost".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "my_timer_serve: invalid address \"tcp:nohost\": expected tcp:HOST:PORT\n"
    );

    let out = host.run(&[OsStr::from_bytes(b"tcp:127.0.0.1:\xff")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "my_timer_serve: the address is not valid UTF-8\n"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("tcp:{}", taken.local_addr().expect("local address"));
    let out = host.run(&[address.as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("my_timer_serve: cannot bind {address}: "))
            && stderr.ends_with('\n')
            && stderr.lines().count() == 1,
        "{stderr:?}"
    );

    // A directory is never replaced by a socket; its name, newline and all,
    // is reported on one line.
    let dir = tempfile::tempdir().expect("temp dir");
    let odd = dir.path().join("two\nlines");
    std::fs::create_dir(&odd).expect("create dir");
    let out = host.run(&[format!("unix:{}", odd.display()).as_ref()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "what is at the path is the caller's"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("my_timer_serve: cannot bind unix:")
            && stderr.contains("two lines: a directory is there, not a stale socket")
            && stderr.lines().count() == 1,
        "{stderr:?}"
    );
    assert!(odd.is_dir());
}

#[test]
fn the_library_exports_my_timer_serve() {
    let Some(host) = CHost::build() else { return };
    // GNU and BSD nm list the dynamic symbols with -D; Apple's with -g and
    // a leading underscore.
    let (args, symbol) = if cfg!(target_os = "macos") {
        (["-gU"], "_my_timer_serve")
    } else {
        (["-D"], "my_timer_serve")
    };
    let out = match Command::new("nm").args(args).arg(&host.library).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: no nm to list the library's symbols");
            return;
        }
        Err(e) => panic!("nm: {e}"),
    };
    assert!(out.status.success(), "nm failed: {}", text(&out.stderr));
    let symbols = text(&out.stdout);
    let defined = symbols.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields.as_slice(), [_, "T", name] if *name == symbol)
    });
    assert!(defined, "no defined text symbol {symbol}:\n{symbols}");
}

/// Runs `contract.rs` with `TIMER_SERVE_HOST=program`, so that its servers
/// are `program` instead of the Rust `serve_host`. `--workspace` resolves
/// features as `cargo test --workspace` does: the suite already built is
/// reused.
fn conformance_suite(program: &Path, filter: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "--workspace", "--test", "contract", "--"])
        .args(filter)
        .env("TIMER_SERVE_HOST", program)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs");
    let output = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    (out.status.success(), output)
}

#[test]
fn the_c_host_passes_the_conformance_suite() {
    let Some(host) = CHost::build() else { return };
    // The suite does spawn the program it is given.
    let (passed, output) = conformance_suite(Path::new("/nonexistent/host"), &["reference_client"]);
    assert!(
        !passed && output.contains("/nonexistent/host does not start"),
        "{output}"
    );

    let (passed, output) = conformance_suite(&host.program, &[]);
    assert!(
        passed,
        "the conformance suite failed against the C host:\n{output}"
    );
    let summary = output
        .lines()
        .find(|line| line.starts_with("test result: ok."))
        .unwrap_or_else(|| panic!("no test summary in:\n{output}"));
    eprintln!("conformance suite against the C host: {summary}");
}
