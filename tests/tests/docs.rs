//! The repository's documents stand alone: no relative link in a `.md` file
//! leaves the repository or points at a missing file, no source file points
//! at a sibling checkout, and `PROTOCOL.cddl` parses and matches the bytes
//! PROTOCOL.md shows.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// The repository root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every file under `dir` ending in `ext`, outside build output and VCS data.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "artifacts" | "corpus") {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// The targets of the inline links `[text](target)` and reference
/// definitions `[label]: target` in `text`, code spans and blocks skipped.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Drop code spans: `[a](b)` inside backticks is not a link.
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if let Some(close) = trimmed.strip_prefix('[').and_then(|t| t.find("]:")) {
            targets.push(trimmed[close + 3..].trim().to_owned());
        }
    }
    targets
}

/// What is wrong with a relative link `target` in file `from`, if anything.
fn broken(root: &Path, from: &Path, target: &str) -> Option<String> {
    let target = target.split_whitespace().next().unwrap_or("");
    if target.is_empty()
        || target.starts_with('#')
        || target.contains("://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    let path = target.split('#').next().unwrap();
    let mut resolved = from.parent().unwrap().to_path_buf();
    for part in Path::new(path).components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(p) => resolved.push(p),
            _ => return Some(format!("{target}: not a relative path")),
        }
    }
    if !resolved.starts_with(root) {
        Some(format!("{target}: leaves the repository"))
    } else if !resolved.exists() {
        Some(format!("{target}: no such file"))
    } else {
        None
    }
}

#[test]
fn no_markdown_link_leaves_the_repository_or_dangles() {
    let root = root();
    let mut docs = Vec::new();
    files(&root, ".md", &mut docs);
    assert!(docs.iter().any(|d| d.ends_with("PROTOCOL.md")), "{docs:?}");
    let mut problems = Vec::new();
    for doc in &docs {
        for target in link_targets(&fs::read_to_string(doc).unwrap()) {
            if let Some(problem) = broken(&root, doc, &target) {
                problems.push(format!(
                    "{}: {problem}",
                    doc.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_link_checker_catches_what_it_must() {
    let root = root();
    let readme = root.join("README.md");
    assert_eq!(
        link_targets("see [x](../a.md) and `[y](b.md)`\n[z]: c.md"),
        ["../a.md", "c.md"]
    );
    assert!(broken(&root, &readme, "../elsewhere/contract.md")
        .unwrap()
        .contains("leaves"));
    assert!(broken(&root, &readme, "NOPE.md")
        .unwrap()
        .contains("no such file"));
    assert_eq!(broken(&root, &readme, "PROTOCOL.md#events"), None);
    assert_eq!(broken(&root, &readme, "https://example.com/x"), None);
}

#[test]
fn no_source_or_document_points_at_a_sibling_checkout() {
    let root = root();
    // Spelled in two pieces so that this file does not match itself.
    let sibling = ["..", "/shared/"].concat();
    let mut all = Vec::new();
    for ext in [".rs", ".md", ".toml", ".yml", ".sh"] {
        files(&root, ext, &mut all);
    }
    let offenders: Vec<_> = all
        .iter()
        .filter(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            // BENCHMARKS.md may name the shared harness as an optional extra.
            text.lines()
                .any(|l| l.contains(&sibling) && !l.contains("optional"))
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// Whether the CBOR `value` matches `rule` of PROTOCOL.cddl.
fn matches(rule: &str, value: &[u8]) -> Result<(), String> {
    let doc = fs::read_to_string(root().join("PROTOCOL.cddl")).unwrap();
    cddl::validate_cbor_from_slice(&format!("root = {rule}\n{doc}"), value, None)
        .map_err(|e| e.to_string())
}

#[test]
fn protocol_cddl_parses_and_matches_the_bytes_of_protocol_md() {
    let doc = fs::read_to_string(root().join("PROTOCOL.cddl")).unwrap();
    cddl::parser::cddl_from_str(&doc, false).expect("PROTOCOL.cddl parses");
    matches("version-reply", b"\x70nim-timer v0.1.0").unwrap();
    matches("version-args", b"\xa0").unwrap();
    let echo_args = b"\xa1\x63req\xa2\x67message\x62hi\x67delayMs\x00";
    matches("echo-args", echo_args).unwrap();
    matches(
        "echo-reply",
        b"\xa2\x66echoed\x62hi\x69timerName\x6aipc-server",
    )
    .unwrap();
    matches("rpc.subscribe-args", b"\xa1\x66events\x81\x6don_echo_fired").unwrap();
    let hello = b"\xa1\x68features\x81\x69multiplex";
    matches("rpc.hello-args", hello).unwrap();
    matches("rpc.hello-reply", hello).unwrap();
    matches("rpc.cancel-args", b"\xa1\x62id\x05").unwrap();
    matches("rpc.cancel-reply", b"\xa1\x69cancelled\xf5").unwrap();
    matches(
        "rpc.subscribe-reply",
        b"\xa1\x6asubscribed\x81\x6don_echo_fired",
    )
    .unwrap();
    let envelope =
        b"\xa2\x69eventType\x6don_echo_fired\x67payload\xa2\x67message\x62hi\x69echoCount\x01";
    matches("event-envelope", envelope).unwrap();
    matches("on_echo_fired-payload", &envelope[33..]).unwrap();
    // And the negative: a text delay is no echo request.
    assert!(matches(
        "echo-args",
        b"\xa1\x63req\xa2\x67message\x62hi\x67delayMs\x61x"
    )
    .is_err());
}
