//! The `RPC_*` table in rpc-core is the only list of the variables: the
//! README and `serve_host --help` show exactly it.

use std::process::Command;

use rpc_core::server::{env_help, env_markdown, ENV_VARS};

#[test]
fn the_readme_shows_the_table() {
    let readme = std::fs::read_to_string(tests::workspace_root().join("README.md")).unwrap();
    let (_, rest) = readme
        .split_once("<!-- rpc-env:start -->\n")
        .expect("README has the start marker");
    let (table, _) = rest
        .split_once("<!-- rpc-env:end -->")
        .expect("README has the end marker");
    assert_eq!(
        table,
        env_markdown(),
        "README.md's table is stale; paste env_markdown()"
    );
}

#[test]
fn serve_host_help_shows_the_table() {
    let out = Command::new(tests::binary("serve_host"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "--help exits 0");
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("Serve the timer library"), "{help}");
    assert!(help.contains("Usage: serve_host"), "{help}");
    assert!(help.contains(&env_help()), "{help}");
    for var in &ENV_VARS {
        assert_eq!(
            help.matches(&format!("  {} ", var.name)).count(),
            1,
            "{} once in\n{help}",
            var.name
        );
    }
}
