//! The shape of the crate, checked: every module sits in one layer of [`LAYERS`], imports only
//! from its own layer or the layers below, and no import circle runs between modules. It reads
//! the sources (every `crate::`, `super::`, `self::` and child-module path, in `use` lines, code,
//! attributes and macro bodies alike), so a new import that breaks the order fails here, naming
//! the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// The layers, bottom first. A module may use the modules of its own layer and of the layers
/// below it, never those above. An entry covers its module and everything below it, unless its
/// children are entries of their own: then every child file must be listed (the crate root and
/// `commands` are split like that). ARCHITECTURE.md says what each layer is for.
const LAYERS: &[&[&str]] = &[
    // Leaves: only the standard library and outside crates.
    &["exit", "duration", "env", "yaml", "poll", "digest"],
    // One Kubernetes object as data.
    &["object"],
    // The domain: the backup folder on disk, backup locations in object storage, encryption at
    // rest, the cluster's API, the retention rules of prune.
    &["folder", "location", "encryption", "cluster", "retention"],
    // A backup location opened once per command: a folder or a bucket, through the folder code.
    &["store"],
    // The DataRobot engine, run in this process or by the helper in the app pod.
    &["datarobot"],
    // Everything shown to the user. Above the domain, so that domain code cannot print.
    &["printer"],
    // The command line (clap types): only the command layer reads it.
    &["cli"],
    &["completion"],
    // The command layer: what the commands share, then each command with its work function.
    &["commands", "commands::keys"],
    // The plan that restore and diff share.
    &["commands::plan"],
    &[
        "commands::api_surface",
        "commands::app",
        "commands::backup",
        "commands::copy",
        "commands::delete",
        "commands::deployments",
        "commands::diff",
        "commands::list",
        "commands::prune",
        "commands::rekey",
        "commands::restore",
        "commands::show",
        "commands::spark_cleanup",
        "commands::verify",
        "commands::version",
    ],
    // Scheduled backups: install, run-now, status, uninstall, and the run in the pod (which
    // runs backup and prune).
    &["commands::schedule"],
    // The hints for every error type the commands and the layers below raise.
    &["commands::diagnostics"],
    // prepare and recover: runbooks that run the standalone commands' work functions.
    &["commands::runbook"],
    // Tests only: snapshots of the text of outcomes built from every command and runbook.
    &["commands::render_tests"],
    // The entry point: parses, dispatches, prints the error with its hint.
    &[""],
];

/// A module path from the crate root (`["commands", "backup"]`); empty for the root.
type Module = Vec<String>;

fn module_name(module: &[String]) -> String {
    if module.is_empty() {
        "crate root (main.rs)".to_string()
    } else {
        module.join("::")
    }
}

/// The modules the source files define, each with its file.
fn source_files(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // `src/bin` holds other crates (binaries of their own).
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut module: Module = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module
                    .last()
                    .is_some_and(|last| last == "mod" || last == "main")
                {
                    module.pop();
                }
                files.insert(module, path);
            }
        }
    }
    files
}

/// One path the code names, with the line it is on.
#[derive(Debug)]
struct Named {
    /// The module whose code names it (an inline `mod tests` counts as its own module).
    from: Module,
    path: Vec<String>,
    line: usize,
}

/// Every path of two or more segments in `tokens`, `use` groups expanded
/// (`a::{b, c::d}` is `a::b` and `a::c::d`).
fn named_paths(tokens: TokenStream, module: &Module, out: &mut Vec<Named>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut index = 0;
    while index < tokens.len() {
        match &tokens[index] {
            // `mod NAME { ... }`: its paths are relative to NAME.
            TokenTree::Ident(word) if word == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(index + 1), tokens.get(index + 2))
                    && body.delimiter() == Delimiter::Brace
                {
                    let mut inner = module.clone();
                    inner.push(name.to_string());
                    named_paths(body.stream(), &inner, out);
                    index += 3;
                    continue;
                }
                index += 1;
            }
            TokenTree::Ident(first) if !follows_path_separator(&tokens, index) => {
                let line = first.span().start().line;
                let (paths, next) = path_at(&tokens, index);
                for path in paths.into_iter().filter(|p| p.len() > 1) {
                    out.push(Named {
                        from: module.clone(),
                        path,
                        line,
                    });
                }
                index = next;
            }
            TokenTree::Group(group) => {
                named_paths(group.stream(), module, out);
                index += 1;
            }
            _ => index += 1,
        }
    }
}

/// Whether the token before `index` is `::` (then `index` is inside a path, not its start).
fn follows_path_separator(tokens: &[TokenTree], index: usize) -> bool {
    index >= 2 && is_separator(&tokens[index - 2], &tokens[index - 1])
}

fn is_separator(first: &TokenTree, second: &TokenTree) -> bool {
    matches!((first, second), (TokenTree::Punct(a), TokenTree::Punct(b))
        if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

/// The path (or paths, for a `use` group) starting at `index`, and the index after it.
fn path_at(tokens: &[TokenTree], mut index: usize) -> (Vec<Vec<String>>, usize) {
    let mut segments = vec![tokens[index].to_string()];
    index += 1;
    while index + 1 < tokens.len() && is_separator(&tokens[index], &tokens[index + 1]) {
        match tokens.get(index + 2) {
            Some(TokenTree::Ident(segment)) => {
                segments.push(segment.to_string());
                index += 3;
            }
            Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                let mut paths = Vec::new();
                for item in use_group_items(group.stream()) {
                    let (inner, _) = path_at(&item, 0);
                    for tail in inner {
                        let mut path = segments.clone();
                        // `self` in a group names the prefix itself.
                        path.extend(tail.into_iter().filter(|s| s != "self"));
                        paths.push(path);
                    }
                }
                return (paths, index + 3);
            }
            // `a::*`, `a::<T>`: the path so far.
            _ => break,
        }
    }
    (vec![segments], index)
}

/// The comma-separated items of a `use` group, each as its tokens.
fn use_group_items(group: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut items = vec![Vec::new()];
    for token in group {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => items.push(Vec::new()),
            _ => items.last_mut().unwrap().push(token),
        }
    }
    items
        .into_iter()
        .filter(|item| matches!(item.first(), Some(TokenTree::Ident(_))))
        .collect()
}

/// The module a named path refers to: the longest known module it starts with, after resolving
/// `crate`, `super`, `self` and the names of child modules. `None` for outside crates.
fn target_of(named: &Named, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut path = named.path.iter().peekable();
    let mut absolute: Module = match path.peek()?.as_str() {
        "crate" => {
            path.next();
            Vec::new()
        }
        "self" => {
            path.next();
            named.from.clone()
        }
        "super" => {
            let mut base = named.from.clone();
            while path.peek().is_some_and(|s| *s == "super") {
                path.next();
                base.pop();
            }
            base
        }
        child => {
            let mut relative = named.from.clone();
            relative.push(child.to_string());
            if !modules.contains(&relative) {
                return None;
            }
            named.from.clone()
        }
    };
    let mut found = absolute.clone();
    for segment in path {
        absolute.push(segment.clone());
        if modules.contains(&absolute) {
            found = absolute.clone();
        }
    }
    Some(found)
}

/// The unit a module belongs to: the longest listed prefix.
fn unit_of(module: &[String], units: &BTreeMap<Module, Option<usize>>) -> Option<Module> {
    (0..=module.len())
        .rev()
        .map(|len| module[..len].to_vec())
        .find(|prefix| units.contains_key(prefix))
}

/// An import from one unit into another.
struct Edge {
    file: PathBuf,
    line: usize,
    path: String,
}

/// What is wrong with the crate's shape, one line each.
fn problems(src: &Path, skip: &Path) -> Vec<String> {
    let mut files = source_files(src);
    files.retain(|_, file| file != skip);
    // Each entry of LAYERS with its layer; a module missing there is a unit without one.
    let mut units: BTreeMap<Module, Option<usize>> = BTreeMap::new();
    for (layer, entries) in LAYERS.iter().enumerate() {
        for entry in *entries {
            let module: Module = match *entry {
                "" => Vec::new(),
                entry => entry.split("::").map(str::to_string).collect(),
            };
            units.insert(module, Some(layer));
        }
    }
    let relative = |file: &Path| file.strip_prefix(src).unwrap_or(file).display().to_string();
    let mut problems = Vec::new();
    for unit in units.keys() {
        if !files.contains_key(unit) {
            problems.push(format!(
                "{} is listed in LAYERS but has no file",
                module_name(unit)
            ));
        }
    }
    // A unit whose children are units lists all its child files.
    for module in files.keys().filter(|m| !m.is_empty()) {
        let parent = &module[..module.len() - 1];
        let split = units.iter().any(|(unit, layer)| {
            layer.is_some() && unit.len() == module.len() && unit.starts_with(parent)
        });
        if split && !units.contains_key(module) {
            problems.push(format!(
                "{} ({}) is in no layer: add it to LAYERS",
                module_name(module),
                relative(&files[module])
            ));
            units.insert(module.clone(), None);
        }
    }

    let mut modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut named = Vec::new();
    let mut file_of: BTreeMap<Module, PathBuf> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let tokens = TokenStream::from_str(&text)
            .unwrap_or_else(|err| panic!("cannot read {}: {err:?}", file.display()));
        let start = named.len();
        named_paths(tokens, module, &mut named);
        for found in &named[start..] {
            // Inline modules (`mod tests`) are modules too, in the same file.
            modules.insert(found.from.clone());
            file_of.insert(found.from.clone(), file.clone());
        }
        file_of.insert(module.clone(), file.clone());
    }

    // The first place each unit uses another, and how many places in all.
    let mut edges: BTreeMap<(Module, Module), (Edge, usize)> = BTreeMap::new();
    for found in &named {
        let Some(target) = target_of(found, &modules) else {
            continue;
        };
        let (Some(from), Some(to)) = (unit_of(&found.from, &units), unit_of(&target, &units))
        else {
            continue;
        };
        if from != to {
            let edge = Edge {
                file: file_of[&found.from].clone(),
                line: found.line,
                path: found.path.join("::"),
            };
            edges.entry((from, to)).or_insert((edge, 0)).1 += 1;
        }
    }
    let place = |edge: &Edge| format!("{} ({}:{})", edge.path, relative(&edge.file), edge.line);
    for ((from, to), (edge, count)) in &edges {
        if let (Some(from_layer), Some(to_layer)) = (units[from], units[to])
            && from_layer < to_layer
        {
            problems.push(format!(
                "{} (layer {from_layer}) uses {} (layer {to_layer}), above it: {}{}",
                module_name(from),
                module_name(to),
                place(edge),
                match count {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                }
            ));
        }
    }
    for circle in circles(&edges) {
        let steps: Vec<String> = circle
            .windows(2)
            .map(|pair| {
                let (edge, _) = &edges[&(pair[0].clone(), pair[1].clone())];
                format!("{} uses {}", module_name(&pair[0]), place(edge))
            })
            .collect();
        problems.push(format!("import circle: {}", steps.join(", then ")));
    }
    problems
}

/// One circle through each group of units that import each other (the strongly connected
/// components of the import graph), first unit repeated at the end.
fn circles<T>(edges: &BTreeMap<(Module, Module), T>) -> Vec<Vec<Module>> {
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let reaches = |from: &Module, to: &Module| -> Option<Vec<Module>> {
        // Breadth first, so the circle shown is a shortest one.
        let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(at) = queue.pop_front() {
            for step in next.get(at).into_iter().flatten() {
                if came_from.contains_key(step) {
                    continue;
                }
                came_from.insert(step, at);
                if *step == to {
                    let mut path = vec![to.clone()];
                    let mut back = came_from[to];
                    path.push(back.clone());
                    while back != from {
                        back = came_from[back];
                        path.push(back.clone());
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(step);
            }
        }
        None
    };
    let mut seen: BTreeSet<Module> = BTreeSet::new();
    let mut found = Vec::new();
    for from in next.keys() {
        if seen.contains(*from) {
            continue;
        }
        if let Some(circle) = reaches(from, from) {
            seen.extend(circle.iter().cloned());
            found.push(circle);
        }
    }
    found
}

#[test]
fn modules_import_only_their_layer_and_the_layers_below_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // This file only names modules in strings; it is a test of the others.
    let this = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(file!());
    let problems = problems(&src, &this);
    assert!(
        problems.is_empty(),
        "the crate's layers (see LAYERS in {}, and ARCHITECTURE.md):\n{}",
        file!(),
        problems.join("\n")
    );
}

#[test]
fn paths_are_read_from_use_groups_code_and_macros() {
    let code = r#"
        use crate::a::{self, b::{C, d}, e as f};
        use super::g;
        #[arg(value_parser = crate::h::parse)]
        fn x() { tokio::select! { _ = crate::i::j() => {} } let s = "crate::k::l"; }
        mod tests { use super::*; use super::m::n; }
    "#;
    let mut named = Vec::new();
    named_paths(
        TokenStream::from_str(code).unwrap(),
        &vec!["top".to_string(), "here".to_string()],
        &mut named,
    );
    let paths: Vec<String> = named
        .iter()
        .map(|n| format!("{}: {}", n.from.join("::"), n.path.join("::")))
        .collect();
    assert_eq!(
        paths,
        [
            "top::here: crate::a",
            "top::here: crate::a::b::C",
            "top::here: crate::a::b::d",
            "top::here: crate::a::e",
            "top::here: super::g",
            "top::here: crate::h::parse",
            "top::here: tokio::select",
            "top::here: crate::i::j",
            "top::here::tests: super::m::n",
        ]
    );
    let modules: BTreeSet<Module> = [vec![], vec!["top".into()], vec!["top".into(), "m".into()]]
        .into_iter()
        .collect();
    let module = |n: &Named| target_of(n, &modules).map(|m| m.join("::"));
    assert_eq!(
        module(&named[0]),
        Some(String::new()),
        "crate::a is unknown"
    );
    assert_eq!(module(&named[4]), Some("top".into()), "super of top::here");
    assert_eq!(module(&named[6]), None, "outside crates are not modules");
    assert_eq!(
        module(&named[8]),
        Some("top::here".into()),
        "super of tests"
    );
}
