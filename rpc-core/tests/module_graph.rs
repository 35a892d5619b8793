//! rpc-core's modules form layers: the graph built from the `crate::` paths
//! in `src/` has no cycle, and no module imports a layer above its own.
//!
//! `cargo test -p rpc-core --test module_graph -- --nocapture` prints the
//! graph, one module and what it uses per line. A node is a top-level module
//! (a file `src/NAME.rs` or a directory `src/NAME/`, whose files are one
//! concern and may use each other through `super::`). Comments and the
//! `#[cfg(test)] mod tests` at the end of a file are not part of the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first: a module may use its own layer and those below.
const LAYERS: [&[&str]; 3] = [
    &["address", "error", "peer", "pem", "schema", "wire"],
    &["context", "events", "handler", "registry"],
    &["__private", "builtins", "cddl", "client", "server"],
];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules each file of `src` uses.
fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for (module, text) in files(src, src) {
        let used = graph.entry(module.clone()).or_default();
        for name in crate_paths(&code_of(&text)) {
            if name != module {
                used.insert(name);
            }
        }
    }
    graph
}

/// `(module, text)` of every `.rs` file under `dir`; `lib.rs` is skipped
/// (it only declares and re-exports).
fn files(src: &Path, dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(files(src, &path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || path == src.join("lib.rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        let module = if module == "private" {
            "__private"
        } else {
            module
        };
        out.push((module.to_owned(), std::fs::read_to_string(&path).unwrap()));
    }
    out
}

/// The text without comments and without the trailing test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The module names after `crate::`, including each name of a
/// `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `rpc_core::...` or `$crate::...` are not this crate's paths.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.extend(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || !item.contains("::") {
                    item.push(c);
                }
            }
            names.extend(first_ident(&item));
        } else {
            names.extend(first_ident(rest));
        }
    }
    // Items of the crate root (`crate::Error`, re-exported) are their modules'.
    names
        .into_iter()
        .map(|name| match name.as_str() {
            "Error" => "error".to_owned(),
            "Address" => "address".to_owned(),
            "Context" => "context".to_owned(),
            "Peer" => "peer".to_owned(),
            "CallError" | "Client" => "client".to_owned(),
            "Server" => "server".to_owned(),
            _ => name,
        })
        .collect()
}

fn first_ident(text: &str) -> Option<String> {
    let ident: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// A cycle of `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn print(graph: &Graph) {
    for (module, used) in graph {
        let used: Vec<&str> = used.iter().map(String::as_str).collect();
        println!("{module:>10} -> {}", used.join(", "));
    }
}

#[test]
fn the_modules_form_layers_without_a_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    print(&graph);
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
    for (module, used) in &graph {
        let Some(own) = layer(module) else {
            panic!("module {module} is in no layer: add it to LAYERS");
        };
        for other in used {
            let Some(theirs) = layer(other) else {
                panic!("{module} uses {other}, which is in no layer: add it to LAYERS");
            };
            assert!(
                theirs <= own,
                "{module} (layer {own}) uses {other}, a layer above (layer {theirs})"
            );
        }
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .fold(Graph::new(), |mut g, (from, to)| {
            g.entry(from.to_owned()).or_default().insert(to.to_owned());
            g
        });
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let mut acyclic = graph.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn paths_are_read_from_code_only() {
    let code = code_of(
        "use crate::{wire::{Reply, STATUS_OK}, schema, Error};\n\
         // crate::server in a comment\n\
         let x = crate::events::Hub::new(); // crate::client\n\
         let y = rpc_core::builtins::x;\n\
         #[cfg(test)]\nmod tests { use crate::cddl; }\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(names, ["error", "events", "schema", "wire"]);
}
