//! CDDL (RFC 8610) text generated from traced types: pure text, no I/O
//! and no knowledge of servers. [`crate::builtins`] feeds it what a server
//! serves.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde_reflection::{ContainerFormat, Format, Named};

use crate::schema::{Shape, Traced, Types};

/// The CDDL document of `methods` (wire name and types) and `events` (wire
/// name and payload shape), in the order given: for each
/// method `NAME-args` (its payload; maps accept unknown keys) and
/// `NAME-reply` (the body of a status 0 reply), for each event
/// `NAME-payload`, and one rule per named type they use.
///
/// A name that is not a valid rule name has each invalid character
/// replaced with `-` (and `_` put before a first character that cannot
/// start a name).
pub fn document(methods: &[(&str, Types)], events: &[(&str, Shape)]) -> String {
    let mut doc = Doc::default();
    let methods: Vec<_> = methods
        .iter()
        .map(|(name, types)| {
            let base = doc.unique(&rule_name(name), &["-args", "-reply"]);
            let args = doc.add(types.args.clone());
            let reply = doc.add(types.reply.clone());
            (*name, base, args, reply)
        })
        .collect();
    let events: Vec<_> = events
        .iter()
        .map(|(name, shape)| {
            let base = doc.unique(&rule_name(name), &["-payload"]);
            (*name, base, doc.add(shape.clone()))
        })
        .collect();
    for &(_, _, args, reply) in &methods {
        doc.reach_root(args, true);
        doc.reach_root(reply, false);
    }
    for &(_, _, payload) in &events {
        doc.reach_root(payload, false);
    }
    doc.name_types();

    let mut out = String::from(
        "; The methods of this server, generated from their Rust types (CDDL, RFC 8610).\n\
         ; NAME-args: a request's payload (unknown keys are ignored);\n\
         ; NAME-reply: the body of a status 0 reply. Status 1 bodies are UTF-8 text.\n",
    );
    for (name, base, args, reply) in &methods {
        let _ = write!(out, "\n; {name}\n");
        doc.write_root(&mut out, &format!("{base}-args"), *args, true);
        doc.write_root(&mut out, &format!("{base}-reply"), *reply, false);
    }
    if !events.is_empty() {
        out.push_str(
            "\n; Events, to subscribers (rpc.subscribe): a status 2 frame's body is\n\
             ; {\"eventType\": NAME, \"payload\": NAME-payload, ? \"dropped\": uint}.\n",
        );
    }
    for (name, base, payload) in &events {
        let _ = write!(out, "\n; {name}\n");
        doc.write_root(&mut out, &format!("{base}-payload"), *payload, false);
    }
    doc.write_types(&mut out);
    out
}

/// `math.div` → `math.div`, `a b` → `a-b`, `9lives` → `_9lives`.
fn rule_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        let start = c.is_ascii_alphabetic() || matches!(c, '@' | '_' | '$');
        if i == 0 && !start {
            out.push('_');
        }
        let valid = start || c.is_ascii_digit() || (i > 0 && matches!(c, '-' | '.'));
        out.push(if valid { c } else { '-' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// `EchoRequest` → `echo-request`, `HTTPServer` → `http-server`.
fn kebab(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let after_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let acronym_end = i > 0
                && chars[i - 1].is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if after_lower || acronym_end {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    rule_name(&out)
}

/// The names of the standard prelude (RFC 8610, appendix D): never redefined.
const PRELUDE: &[&str] = &[
    "any",
    "uint",
    "nint",
    "int",
    "bstr",
    "bytes",
    "tstr",
    "text",
    "tdate",
    "time",
    "number",
    "biguint",
    "bignint",
    "bigint",
    "integer",
    "unsigned",
    "decfrac",
    "bigfloat",
    "eb64url",
    "eb64legacy",
    "eb16",
    "encoded-cbor",
    "uri",
    "b64url",
    "b64legacy",
    "regexp",
    "mime-message",
    "cbor-any",
    "float16",
    "float32",
    "float64",
    "float16-32",
    "float32-64",
    "float",
    "false",
    "true",
    "bool",
    "nil",
    "null",
    "undefined",
];

/// A named container, shared by every shape that has the same one.
struct Entry {
    source: String,
    format: ContainerFormat,
    /// The shape whose names its references resolve through.
    scope: usize,
    /// Reached from a payload (its maps accept unknown keys).
    open: bool,
    /// Reached through a reference, so it needs a rule.
    referenced: bool,
    /// An enum only partly traced: described as `any`.
    partial: bool,
    rule: String,
}

enum Root {
    Traced { root: Format, scope: usize },
    Any,
    Failed(String),
}

#[derive(Default)]
struct Doc {
    entries: Vec<Entry>,
    /// Per traced shape: serde name → entry.
    scopes: Vec<BTreeMap<String, usize>>,
    roots: Vec<Root>,
    taken: HashSet<String>,
    /// (entry, from a payload) pairs already walked.
    walked: HashSet<(usize, bool)>,
}

impl Doc {
    /// `base`, or `base-2`, ...: the first whose rules (`base` followed by
    /// each of `suffixes`) are all free; takes them.
    fn unique(&mut self, base: &str, suffixes: &[&str]) -> String {
        let mut candidate = base.to_owned();
        let mut n = 2;
        loop {
            let rules: Vec<String> = suffixes.iter().map(|s| format!("{candidate}{s}")).collect();
            let free =
                |rule: &String| !PRELUDE.contains(&rule.as_str()) && !self.taken.contains(rule);
            if rules.iter().all(free) {
                self.taken.extend(rules);
                return candidate;
            }
            candidate = format!("{base}-{n}");
            n += 1;
        }
    }

    fn add(&mut self, shape: Shape) -> usize {
        let root = match shape.0 {
            Traced::Found {
                root,
                containers,
                partial,
            } => {
                let scope = self.scopes.len();
                let mut names = BTreeMap::new();
                for (source, format) in containers {
                    let partial = partial.contains(&source);
                    let same = self.entries.iter().position(|e| {
                        e.source == source && e.format == format && e.partial == partial
                    });
                    let index = same.unwrap_or_else(|| {
                        self.entries.push(Entry {
                            source: source.clone(),
                            format,
                            scope,
                            open: false,
                            referenced: false,
                            partial,
                            rule: String::new(),
                        });
                        self.entries.len() - 1
                    });
                    names.insert(source, index);
                }
                self.scopes.push(names);
                Root::Traced { root, scope }
            }
            Traced::Any => Root::Any,
            Traced::Failed(why) => Root::Failed(why),
        };
        self.roots.push(root);
        self.roots.len() - 1
    }

    /// Marks what a root reaches: its own container is written inline, the
    /// containers it refers to need rules.
    fn reach_root(&mut self, root: usize, open: bool) {
        let Root::Traced { root, scope } = &self.roots[root] else {
            return;
        };
        let (root, scope) = (root.clone(), *scope);
        match self.inline(&root, scope) {
            Some(entry) if self.entries[entry].partial => {}
            Some(entry) => {
                let format = self.entries[entry].format.clone();
                let scope = self.entries[entry].scope;
                self.reach_container(&format, scope, open);
            }
            None => self.reach_format(&root, scope, open),
        }
    }

    /// The container a root names, written inline in the method's rule.
    fn inline(&self, root: &Format, scope: usize) -> Option<usize> {
        match root {
            Format::TypeName(name) => self.scopes[scope].get(name).copied(),
            _ => None,
        }
    }

    fn reach_entry(&mut self, entry: usize, open: bool) {
        self.entries[entry].referenced = true;
        self.entries[entry].open |= open;
        if self.walked.insert((entry, open)) && !self.entries[entry].partial {
            let format = self.entries[entry].format.clone();
            let scope = self.entries[entry].scope;
            self.reach_container(&format, scope, open);
        }
    }

    fn reach_container(&mut self, container: &ContainerFormat, scope: usize, open: bool) {
        for format in children(container) {
            self.reach_format(format, scope, open);
        }
    }

    fn reach_format(&mut self, format: &Format, scope: usize, open: bool) {
        match format {
            Format::TypeName(name) => {
                if let Some(&entry) = self.scopes[scope].get(name) {
                    self.reach_entry(entry, open);
                }
            }
            Format::Option(inner) | Format::Seq(inner) => self.reach_format(inner, scope, open),
            Format::TupleArray { content, .. } => self.reach_format(content, scope, open),
            Format::Map { key, value } => {
                self.reach_format(key, scope, open);
                self.reach_format(value, scope, open);
            }
            Format::Tuple(items) => {
                for item in items {
                    self.reach_format(item, scope, open);
                }
            }
            _ => {}
        }
    }

    fn name_types(&mut self) {
        let mut order: Vec<usize> = (0..self.entries.len())
            .filter(|&e| self.entries[e].referenced)
            .collect();
        order.sort_by(|&a, &b| self.entries[a].source.cmp(&self.entries[b].source));
        for entry in order {
            let rule = self.unique(&kebab(&self.entries[entry].source), &[""]);
            self.entries[entry].rule = rule;
        }
    }

    fn write_root(&self, out: &mut String, rule: &str, root: usize, open: bool) {
        let expr = match &self.roots[root] {
            Root::Traced { root, scope } => match self.inline(root, *scope) {
                Some(entry) => self.entry(out, &self.entries[entry], open),
                None => self.format(root, *scope),
            },
            Root::Any if open => "{ * tstr => any }".to_owned(),
            Root::Any => "any".to_owned(),
            Root::Failed(why) => {
                let _ = writeln!(out, "; not traced ({}): described as any", one_line(why));
                (if open { "{ * tstr => any }" } else { "any" }).to_owned()
            }
        };
        let _ = writeln!(out, "{rule} = {expr}");
    }

    fn write_types(&self, out: &mut String) {
        let mut named: Vec<&Entry> = self.entries.iter().filter(|e| e.referenced).collect();
        named.sort_by(|a, b| a.rule.cmp(&b.rule));
        if !named.is_empty() {
            out.push_str("\n; The types the methods and events use.\n");
        }
        for entry in named {
            out.push('\n');
            let expr = self.entry(out, entry, entry.open);
            let _ = writeln!(out, "{} = {expr}", entry.rule);
        }
    }

    /// The expression of a named container; a comment first if it is only
    /// partly known.
    fn entry(&self, out: &mut String, entry: &Entry, open: bool) -> String {
        if entry.partial {
            let _ = writeln!(
                out,
                "; {}: an enum reached through a field, whose variants are not all traced",
                one_line(&entry.source)
            );
            return "any".to_owned();
        }
        self.container(&entry.format, entry.scope, open)
    }

    fn container(&self, container: &ContainerFormat, scope: usize, open: bool) -> String {
        match container {
            ContainerFormat::UnitStruct => "null".to_owned(),
            ContainerFormat::NewTypeStruct(inner) => self.format(inner, scope),
            ContainerFormat::TupleStruct(items) => self.array(items, scope),
            ContainerFormat::Struct(fields) => self.map(fields, scope, open),
            ContainerFormat::Enum(variants) => {
                // serde's default, external tagging: a unit variant is its
                // name, any other a one-key map from its name to its content.
                let choices: Vec<String> = variants
                    .values()
                    .map(|variant| {
                        let name = quote(&variant.name);
                        match &variant.value {
                            serde_reflection::VariantFormat::Unit => name,
                            serde_reflection::VariantFormat::NewType(inner) => {
                                format!("{{ {name}: {} }}", self.format(inner, scope))
                            }
                            serde_reflection::VariantFormat::Tuple(items) => {
                                format!("{{ {name}: {} }}", self.array(items, scope))
                            }
                            serde_reflection::VariantFormat::Struct(fields) => {
                                let inner = self.map(fields, scope, open).replace('\n', "\n  ");
                                format!("{{ {name}: {inner} }}")
                            }
                            serde_reflection::VariantFormat::Variable(_) => {
                                format!("{{ {name}: any }}")
                            }
                        }
                    })
                    .collect();
                choices.join(" / ")
            }
        }
    }

    fn map(&self, fields: &[Named<Format>], scope: usize, open: bool) -> String {
        let mut lines: Vec<String> = fields
            .iter()
            .map(|field| match &field.value {
                // serde reads a missing `Option` field as `None`.
                Format::Option(inner) => format!(
                    "? {}: {} / null",
                    quote(&field.name),
                    self.format(inner, scope)
                ),
                other => format!("{}: {}", quote(&field.name), self.format(other, scope)),
            })
            .collect();
        match (lines.is_empty(), open) {
            (true, true) => return "{ * tstr => any }".to_owned(),
            (true, false) => return "{}".to_owned(),
            (false, true) => lines.push("* tstr => any".to_owned()),
            (false, false) => {}
        }
        format!("{{\n  {}\n}}", lines.join(",\n  "))
    }

    fn array(&self, items: &[Format], scope: usize) -> String {
        let items: Vec<String> = items.iter().map(|f| self.format(f, scope)).collect();
        format!("[{}]", items.join(", "))
    }

    fn format(&self, format: &Format, scope: usize) -> String {
        match format {
            Format::TypeName(name) => match self.scopes[scope].get(name) {
                Some(&entry) => self.entries[entry].rule.clone(),
                None => "any".to_owned(),
            },
            Format::Unit => "null".to_owned(),
            Format::Bool => "bool".to_owned(),
            Format::I8 | Format::I16 | Format::I32 | Format::I64 | Format::I128 => "int".to_owned(),
            Format::U8 | Format::U16 | Format::U32 | Format::U64 | Format::U128 => {
                "uint".to_owned()
            }
            Format::F32 | Format::F64 => "float".to_owned(),
            Format::Char | Format::Str => "tstr".to_owned(),
            Format::Bytes => "bstr".to_owned(),
            Format::Option(inner) => format!("{} / null", self.format(inner, scope)),
            Format::Seq(inner) => format!("[* {}]", self.format(inner, scope)),
            Format::Map { key, value } => format!(
                "{{ * {} => {} }}",
                self.format(key, scope),
                self.format(value, scope)
            ),
            Format::Tuple(items) => self.array(items, scope),
            Format::TupleArray { content, size } => {
                format!("[{size}*{size} {}]", self.format(content, scope))
            }
            Format::Variable(_) => "any".to_owned(),
        }
    }
}

fn children(container: &ContainerFormat) -> Vec<&Format> {
    match container {
        ContainerFormat::UnitStruct => Vec::new(),
        ContainerFormat::NewTypeStruct(inner) => vec![&**inner],
        ContainerFormat::TupleStruct(items) => items.iter().collect(),
        ContainerFormat::Struct(fields) => fields.iter().map(|f| &f.value).collect(),
        ContainerFormat::Enum(variants) => variants
            .values()
            .flat_map(|variant| match &variant.value {
                serde_reflection::VariantFormat::NewType(inner) => vec![&**inner],
                serde_reflection::VariantFormat::Tuple(items) => items.iter().collect(),
                serde_reflection::VariantFormat::Struct(fields) => {
                    fields.iter().map(|f| &f.value).collect()
                }
                _ => Vec::new(),
            })
            .collect(),
    }
}

/// A CDDL text literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_replace_invalid_characters() {
        assert_eq!(rule_name("echo"), "echo");
        assert_eq!(rule_name("math.div"), "math.div");
        assert_eq!(rule_name("a b/c"), "a-b-c");
        assert_eq!(rule_name("9lives"), "_9lives");
        assert_eq!(rule_name("-x"), "_-x");
        assert_eq!(rule_name("é"), "_-");
        assert_eq!(rule_name(""), "_");
    }

    #[test]
    fn type_names_become_kebab_case() {
        assert_eq!(kebab("EchoRequest"), "echo-request");
        assert_eq!(kebab("HTTPServer"), "http-server");
        assert_eq!(kebab("Job2Spec"), "job2-spec");
        assert_eq!(kebab("plain"), "plain");
    }

    #[test]
    fn text_literals_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), r#""x\u000ay""#);
    }
}
