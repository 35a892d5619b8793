//! Without its `serve` feature the timer library has no server: nothing of
//! networking in its dependency tree and no `my_timer_serve` in its C
//! library. Each check also runs on the `serve` build, where it must find
//! what it forbids, so that it cannot pass by looking at the wrong thing.

use std::path::Path;

use tests::{cargo, target_dir};

/// Packages that only socket or server code needs.
const NETWORK_PACKAGES: [&str; 4] = [
    "mio",
    "socket2",
    "signal-hook-registry",
    "tracing-subscriber",
];

/// Tokio features of a server: sockets, signals, the multi-threaded runtime.
const SERVER_TOKIO_FEATURES: [&str; 3] = [
    "tokio feature \"net\"",
    "tokio feature \"signal\"",
    "tokio feature \"rt-multi-thread\"",
];

/// `cargo tree` of the timer package, normal dependencies only, one node a line.
fn tree(serve: bool, extra: &[&str]) -> String {
    let mut args = vec![
        "tree",
        "-p",
        "timer",
        "-e",
        "normal,features",
        "--prefix",
        "none",
    ];
    if serve {
        args.extend(["--features", "serve"]);
    }
    args.extend(extra);
    cargo(&args)
}

/// The names of the packages in the dependency tree.
fn packages(serve: bool) -> Vec<String> {
    tree(serve, &["--format", "{p}"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_plain_timer_pulls_in_no_networking() {
    let plain = packages(false);
    for name in NETWORK_PACKAGES {
        assert!(
            !plain.iter().any(|p| p == name),
            "a plain timer depends on {name}"
        );
    }
    // Features are only listed once each in the inverted tree.
    let tokio = tree(false, &["-i", "tokio"]);
    for feature in SERVER_TOKIO_FEATURES {
        assert!(!tokio.contains(feature), "a plain timer enables {feature}");
    }
    let rpc_core = tree(false, &["-i", "rpc-core"]);
    for feature in [
        "rpc-core feature \"server\"",
        "rpc-core feature \"default\"",
    ] {
        assert!(
            !rpc_core.contains(feature),
            "a plain timer enables {feature}:\n{rpc_core}"
        );
    }

    // The same checks see the server when it is there.
    let served = packages(true);
    assert!(served.iter().any(|p| p == "mio"), "{served:?}");
    assert!(tree(true, &["-i", "tokio"]).contains("tokio feature \"net\""));
    assert!(tree(true, &["-i", "rpc-core"]).contains("rpc-core feature \"server\""));
}

/// The C library built from `target`: `libmy_timer.so`, `.dylib` or `my_timer.dll`.
fn library(target: &Path) -> std::path::PathBuf {
    target.join("debug").join(tests::c_library_name())
}

fn mentions_my_timer_serve(library: &Path) -> bool {
    let bytes =
        std::fs::read(library).unwrap_or_else(|e| panic!("cannot read {}: {e}", library.display()));
    let needle = b"my_timer_serve";
    bytes.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn a_plain_cdylib_has_no_my_timer_serve() {
    // A target dir of its own: building the plain variant into the shared
    // one would replace the `serve` library other tests and hosts link.
    let plain = target_dir().join("no-serve");
    let plain_dir = plain.to_str().expect("UTF-8 target dir");
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "timer",
        "--lib",
        "--target-dir",
        plain_dir,
    ]);
    // Not even the name: no export, no code, no string.
    assert!(
        !mentions_my_timer_serve(&library(&plain)),
        "{} mentions my_timer_serve",
        library(&plain).display()
    );

    let served = tests::build_serve_library();
    assert!(
        mentions_my_timer_serve(&served),
        "{} lacks my_timer_serve",
        served.display()
    );
}
