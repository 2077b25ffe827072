//! The server's module graph, read from its source: every module may use only modules of its own
//! layer or lower ones (the layers of the crate map in `src/lib.rs`), and no two modules import
//! each other, directly or round a loop, at any level of the tree.
//!
//! Edges are the `crate::` and `super::` paths in the code (comments are left out: a doc link is
//! not an import). A module's use of its own parent or children is the tree itself and not an
//! edge; two siblings' uses of each other are (under `source/`, say, `feed` and `camera`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate map's layers, lowest first.
const LAYERS: &[&[&str]] = &[
    &["clock", "jpeg", "secret"],
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
            let code: Vec<&str> = text
                .lines()
                .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
                .collect();
            out.insert(module, code.join("\n"));
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

/// The module paths `code` names after `crate::` or `super::`, made absolute; a brace group
/// (`super::{feed, options::X}`) gives one path per item.
fn references(module: &[String], code: &str) -> Vec<Module> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
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
        let items: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += i32::from(c == '{') - i32::from(c == '}');
                    depth < 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut items = Vec::new();
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars() {
                depth += i32::from(c == '{') - i32::from(c == '}');
                if c == ',' && depth == 0 {
                    items.push(std::mem::take(&mut item));
                } else {
                    item.push(c);
                }
            }
            items.push(item);
            items
        } else {
            vec![rest.to_string()]
        };
        for item in items {
            let mut path = base.clone();
            for seg in item.trim().split("::") {
                let seg = ident(seg.trim());
                if seg.is_empty() || seg == "self" {
                    break;
                }
                path.push(seg);
            }
            out.push(path);
        }
    }
    out
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
    let has = |from: &str, to: &str| {
        let split = |s: &str| s.split("::").map(String::from).collect::<Module>();
        edges.contains(&(split(from), split(to)))
    };
    assert!(has("fanout::stream", "source"), "{edges:?}");
    assert!(has("source::camera::capture", "source::feed"));
    assert!(has("http::auth", "secret"));
    let cycle = references(
        &["source".into(), "push".into()],
        "use super::{feed::{self, Feed}, options::X};\nlet x = crate::clock::now();",
    );
    assert_eq!(
        cycle,
        [
            vec!["clock".to_string(), "now".into()],
            vec!["source".into(), "feed".into()],
            vec!["source".into(), "options".into(), "X".into()],
        ]
    );
}
