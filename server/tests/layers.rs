//! The server's module graph, read from its source: every module may use only modules of its own
//! layer or lower ones (the layers of the crate map in `src/lib.rs`), and no two modules import
//! each other, directly or round a loop, at any level of the tree.
//!
//! Edges are the `crate::` and `super::` paths in the code, `use` groups expanded (comments are
//! left out: a doc link is not an import). Not seen: paths through an alias (`use crate as c`),
//! and `super::` inside an inline module is read as the file's own `super::`; neither is used
//! in this crate. A module's use of its own parent or children is the tree itself and not an
//! edge; two siblings' uses of each other are (under `source/`, say, `feed` and `camera`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate map's layers, lowest first.
const LAYERS: &[&[&str]] = &[
    &[
        "clock", "backoff", "jpeg", "secret", "redact", "signed", "testing",
    ],
    &["source"],
    &["net"],
    &["fanout"],
    &["http"],
    &["relay", "config"],
    &["cli"],
];

type Module = Vec<String>;

/// Every module of `src/` with its code, comments removed.
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(name);
                walk(&path, &module, out);
                continue;
            }
            if name == "main" && prefix.is_empty() {
                continue; // the binary, not a module of the library
            }
            if !matches!(name.as_str(), "mod" | "lib") {
                module.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(module, strip_comments(&text));
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// `text` without its comments (a doc link is not an import); string literals are kept whole,
/// so a `//` inside one (`"http://..."`) is not taken for a comment.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            // A char literal '"' must not open a string.
            '\'' if chars.peek() == Some(&'"') => {
                out.push(c);
                out.extend(chars.next());
            }
            _ => out.push(c),
        }
    }
    out
}

/// The module paths `code` names after `crate::` or `super::`, made absolute; a brace group
/// (`super::{feed, options::X}`) gives one path per item.
fn references(module: &[String], code: &str) -> Vec<Module> {
    let mut out = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        // `crate::` inside a longer word (`mjpeg_crate::`) is not a path.
        if code[..start]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let mut base: Module = if code[start..].starts_with("crate::") {
            Vec::new()
        } else {
            module[..module.len().saturating_sub(1)].to_vec()
        };
        let mut rest = &code[start + code[start..].find("::").unwrap() + 2..];
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        expand(&base, rest, &mut out);
    }
    out
}

/// Adds to `out` every path of the use tree at the start of `rest` (`a::b`, `a::{b, c::{d}}`,
/// over several lines), each after `base`.
fn expand(base: &[String], rest: &str, out: &mut Vec<Module>) {
    let mut path = base.to_vec();
    let mut rest = rest.trim_start();
    if rest.is_empty() {
        return; // after a group's trailing comma
    }
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            // The items of the group, split at its top-level commas.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        expand(&path, &group[start..i], out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&path, &group[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let seg: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if seg.is_empty() || seg == "self" {
            break;
        }
        path.push(seg.clone());
        rest = &rest[seg.len()..];
        match rest.trim_start().strip_prefix("::") {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    out.push(path);
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeMap<Module, String>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
        .unwrap_or_default()
}

/// Every edge between two different modules, neither the other's ancestor.
fn edges(modules: &BTreeMap<Module, String>) -> BTreeSet<(Module, Module)> {
    let mut out = BTreeSet::new();
    for (module, code) in modules {
        for path in references(module, code) {
            let target = resolve(&path, modules);
            if target.starts_with(module) || module.starts_with(&target) {
                // `super::*` from a top-level module (its tests) names the root itself: fine.
                assert!(
                    !target.is_empty() || module.is_empty() || path.is_empty(),
                    "{} names {} at the crate root: use its module's path, so the layers show",
                    module.join("::"),
                    path.join("::")
                );
                continue;
            }
            out.insert((module.clone(), target));
        }
    }
    out
}

fn layer(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("module {top} is in no layer of LAYERS (and of lib.rs's map)"))
}

#[test]
fn lower_layers_never_use_higher_ones() {
    let modules = modules();
    let edges = edges(&modules);
    let bad: Vec<String> = edges
        .iter()
        .filter(|(from, to)| layer(&from[0]) < layer(&to[0]))
        .map(|(from, to)| format!("{} uses {}", from.join("::"), to.join("::")))
        .collect();
    assert!(
        bad.is_empty(),
        "a lower layer uses a higher one:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let modules = modules();
    // Each edge, lifted to the two siblings under the modules' lowest common ancestor.
    let mut siblings: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, to) in edges(&modules) {
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        siblings
            .entry(from[..=common].to_vec())
            .or_default()
            .insert(to[..=common].to_vec());
    }
    // Depth-first search for a way back to where it started.
    fn cycle(
        at: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|m| m == at) {
            return Some(path[i..].to_vec());
        }
        if !done.insert(at.clone()) {
            return None;
        }
        path.push(at.clone());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = cycle(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in siblings.keys() {
        if let Some(c) = cycle(start, &siblings, &mut Vec::new(), &mut done) {
            let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {} -> (back)", names.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_the_graph() {
    // The checks above pass on an empty graph too: make sure it is read.
    let modules = modules();
    assert!(modules.contains_key(&vec!["source".to_string(), "feed".to_string()]));
    let edges = edges(&modules);
    let module = |m: &str| m.split("::").map(String::from).collect::<Module>();
    let has = |from: &str, to: &str| edges.contains(&(module(from), module(to)));
    assert!(has("fanout::stream", "source"), "{edges:?}");
    assert!(has("source::camera::capture", "source::feed"));
    assert!(has("http::auth", "secret"));
    // Groups at any depth and over lines, comments skipped, strings kept whole.
    let code = strip_comments(
        "use super::{feed::{self, Feed}, options::X}; // crate::http\n\
         let x = crate::clock::now(\"http://a\"); let y = crate::net::conn::Y;\n\
         use crate::source::{\n    feed,\n    camera::capture, /* crate::cli */\n};",
    );
    assert_eq!(
        references(&module("source::push"), &code),
        [
            "clock::now",
            "net::conn::Y",
            "source::feed",
            "source::camera::capture",
            "source::feed",
            "source::feed::Feed",
            "source::options::X",
        ]
        .map(module)
    );
}
