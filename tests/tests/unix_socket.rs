//! The unix socket file of `serve_host unix:PATH`: created owner-only
//! whatever the umask, widened only by `RPC_UNIX_MODE`; only a stale socket
//! at PATH is replaced, anything else there is left alone.
#![cfg(unix)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tests::{map, ServerProcess};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn version_answers(server: &ServerProcess) {
    assert_eq!(
        server.connect().call("version", &map([])),
        Ok("nim-timer v0.1.0".into())
    );
}

#[test]
fn the_socket_is_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, env, want) in [
        ("000", &[][..], 0o600),
        ("022", &[][..], 0o600),
        ("000", &[("RPC_UNIX_MODE", "0660")][..], 0o660),
        ("077", &[("RPC_UNIX_MODE", "0660")][..], 0o660),
    ] {
        let path = dir.path().join(format!("m{umask}{}.sock", env.len()));
        let server =
            ServerProcess::start_with_umask(&format!("unix:{}", path.display()), umask, env);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(mode(&path), want, "umask {umask}, {env:?}");
        assert_eq!(meta.uid(), std::fs::metadata(dir.path()).unwrap().uid());
        version_answers(&server);
        assert!(server.terminate().success());
        assert!(!path.exists(), "a graceful stop removes the socket file");
    }
}

/// `serve_host ADDRESS` fails before serving: its status and stderr.
fn refused(path: &Path) -> (Option<i32>, String) {
    let (status, stdout, stderr) = tests::run(
        &tests::binary("serve_host"),
        &[&format!("unix:{}", path.display())],
    );
    assert_eq!(stdout, "", "nothing served");
    (status.code(), stderr)
}

#[test]
fn a_regular_file_a_symlink_or_a_directory_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.sock");
    std::fs::write(&file, b"precious").unwrap();
    let (code, stderr) = refused(&file);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a regular file is there"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let (code, stderr) = refused(&link);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a symbolic link is there"), "{stderr}");
    assert_eq!(std::fs::read_link(&link).unwrap(), file);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    let sub = dir.path().join("dir.sock");
    std::fs::create_dir(&sub).unwrap();
    let (code, stderr) = refused(&sub);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a directory is there"), "{stderr}");
    assert!(sub.is_dir());
}

#[test]
fn a_live_socket_is_refused_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let address = format!("unix:{}", path.display());
    let first = ServerProcess::start(&address);
    let ino = std::fs::symlink_metadata(&path).unwrap().ino();
    let (code, stderr) = refused(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another server is listening on {}",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().ino(), ino);
    version_answers(&first);
}

#[test]
fn a_stale_socket_left_by_sigkill_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    let address = format!("unix:{}", path.display());
    let killed = ServerProcess::start(&address);
    drop(killed); // SIGKILL: no clean-up
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_socket());
    let refused = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "a stale socket"
    );
    // (The new file may get the old inode number back: not compared.)
    let server = ServerProcess::start(&address);
    assert_eq!(mode(&path), 0o600);
    version_answers(&server);
    assert!(server.terminate().success());
    assert!(!path.exists());
}
