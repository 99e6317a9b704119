//! The library's layers, as ARCHITECTURE.md declares them, hold in its sources.
//!
//! Every file under `crates/ddmlab/src` is read (its `#[cfg(test)]` module left out) and each
//! module reference taken from it: the paths of `use` trees (braces expanded) and every inline
//! `crate::` / `super::` path, in code or in an attribute's string (serde's `skip_serializing_if =
//! "crate::..."`). Two rules:
//! 1. A reference may not run up the declared order: a file of layer `i` names only modules of
//!    layers `<= i` (the exemptions ARCHITECTURE.md lists, with their reasons, aside).
//! 2. No loop between files: with re-exports followed to the file that defines the name (a `pub
//!    use` is plumbing, not a dependency, so it adds no edge of its own), the files' references
//!    form no cycle.
//!
//! Both failures name the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The non-empty lines of ARCHITECTURE.md's fenced block tagged `tag` (`None`: no such block).
fn fenced_lines<'a>(text: &'a str, tag: &str) -> Option<Vec<&'a str>> {
    let open = format!("```{tag}\n");
    let start = text.find(&open)? + open.len();
    let body = &text[start..start + text[start..].find("```").unwrap_or_else(|| panic!("the {tag} block is closed"))];
    Some(body.lines().filter(|l| !l.trim().is_empty()).collect())
}

/// The declared layers, lowest first: `(layer name, modules)`, from ARCHITECTURE.md's fenced
/// block tagged `layers` (`name: module module ...` per line).
fn declared_layers(text: &str) -> Vec<(String, Vec<String>)> {
    fenced_lines(text, "layers")
        .expect("ARCHITECTURE.md has a ```layers block")
        .into_iter()
        .map(|l| {
            let (name, mods) =
                l.split_once(':').unwrap_or_else(|| panic!("layers line `{l}`: expected `name: modules`"));
            (name.trim().to_string(), mods.split_whitespace().map(str::to_string).collect())
        })
        .collect()
}

/// The exemptions: `file -> module: reason` lines of the ```layer-exemptions block (if any).
fn declared_exemptions(text: &str) -> BTreeSet<(String, String)> {
    fenced_lines(text, "layer-exemptions")
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let (edge, reason) =
                l.split_once(':').unwrap_or_else(|| panic!("exemption `{l}`: expected `file -> module: reason`"));
            assert!(!reason.trim().is_empty(), "exemption `{l}` gives no reason");
            let (file, module) = edge.split_once("->").unwrap_or_else(|| panic!("exemption `{l}`: no `->`"));
            (file.trim().to_string(), module.trim().to_string())
        })
        .collect()
}

/// Every `.rs` file under `dir`, as paths relative to `root` with `/` separators.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
}

/// The module path of a file: `a/b.rs` and `a/b/mod.rs` are `[a, b]`; `lib.rs` is `[]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The source without its test module and `//` comments; lines keep their numbers.
fn code(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                let t = next.trim_start();
                (t.starts_with("mod ") || t.starts_with("pub mod ")) && t.ends_with('{')
            })
        {
            break;
        }
        out.push_str(line.find("//").map_or(line, |i| &line[..i]));
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(is_ident)
            && !text[i + word.len()..].chars().next().is_some_and(is_ident)
    })
}

/// A `use` tree with its braces expanded: `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split("as").next().unwrap_or(&tree).to_string()];
    };
    let head = &tree[..open];
    let body = &tree[open + 1..tree.rfind('}').expect("braces close")];
    let mut items = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    items.push(cur);
    items.into_iter().filter(|i| !i.is_empty()).flat_map(|i| expand(&format!("{head}{i}"))).collect()
}

/// One module reference: the line, the absolute path from the crate root, and whether it is a
/// `pub use` (a re-export).
struct Reference {
    line: usize,
    path: Vec<String>,
    reexport: bool,
}

/// `crate::a::b`, `super::super::c`, `self::d` made absolute from `module`; `None` for a path
/// into another crate.
fn absolute(module: &[String], path: &str) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (base, rest): (Vec<String>, &[&str]) = match segs.first() {
        Some(&"crate") => (Vec::new(), &segs[1..]),
        Some(&"self") => (module.to_vec(), &segs[1..]),
        Some(&"super") => {
            let ups = segs.iter().take_while(|s| **s == "super").count();
            (module[..module.len().saturating_sub(ups)].to_vec(), &segs[ups..])
        }
        _ => return None,
    };
    let mut out = base;
    out.extend(rest.iter().filter(|s| **s != "self" && **s != "*").map(|s| s.to_string()));
    (!out.is_empty()).then_some(out)
}

fn references(file: &str, src: &str) -> Vec<Reference> {
    let module = module_of(file);
    let code = code(src);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut use_spans = Vec::new();
    // `use` statements (with or without `pub` / `pub(crate)`).
    let mut at = 0;
    while let Some(i) = code[at..].find("use ") {
        let start = at + i;
        at = start + 4;
        let before = code[..start].trim_end();
        let first_token = before.is_empty()
            || before.ends_with(';')
            || before.ends_with('{')
            || before.ends_with('}')
            || before.ends_with(']')
            || before.ends_with("pub")
            || before.ends_with(')');
        if !first_token || code[..start].ends_with(|c: char| is_ident(c)) {
            continue;
        }
        let reexport = before.ends_with("pub") || before.ends_with(')');
        let end = start + code[start..].find(';').expect("a use statement ends with `;`");
        use_spans.push(start..end);
        for path in expand(&code[start + 4..end]) {
            if let Some(path) = absolute(&module, &path) {
                out.push(Reference { line: line_of(start), path, reexport });
            }
        }
    }
    // Inline paths outside `use` statements.
    for prefix in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(prefix) {
            let start = at + i;
            at = start + prefix.len();
            if code[..start].ends_with(|c: char| is_ident(c) || c == ':')
                || use_spans.iter().any(|s| s.contains(&start))
            {
                continue;
            }
            let len = code[start..].find(|c: char| !(is_ident(c) || c == ':')).unwrap_or(code.len() - start);
            if let Some(path) = absolute(&module, code[start..start + len].trim_end_matches(':')) {
                out.push(Reference { line: line_of(start), path, reexport: false });
            }
        }
    }
    out
}

/// The file of the longest module prefix of `path`, and the rest of the path.
fn module_file<'a>(files: &BTreeSet<String>, path: &'a [String]) -> (String, &'a [String]) {
    for k in (1..=path.len()).rev() {
        let stem = path[..k].join("/");
        for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if files.contains(&candidate) {
                return (candidate, &path[k..]);
            }
        }
    }
    ("lib.rs".to_string(), path)
}

#[test]
fn imports_run_only_down_the_declared_layers_and_close_no_loop() {
    let root = src_root();
    let doc_path = root.join("../../../ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    let layers = declared_layers(&doc);
    let exempt = declared_exemptions(&doc);
    let layer_of: BTreeMap<&str, (usize, &str)> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, (name, mods))| mods.iter().map(move |m| (m.as_str(), (i, name.as_str()))))
        .collect();

    let mut list = Vec::new();
    rust_files(&root, &root, &mut list);
    let files: BTreeSet<String> = list.iter().cloned().collect();
    let sources: BTreeMap<String, String> =
        list.iter().map(|f| (f.clone(), std::fs::read_to_string(root.join(f)).unwrap())).collect();
    let refs: BTreeMap<&str, Vec<Reference>> = sources.iter().map(|(f, s)| (f.as_str(), references(f, s))).collect();

    let mut problems = Vec::new();
    // Every module is placed.
    for f in &files {
        if let Some(top) = module_of(f).first()
            && !layer_of.contains_key(top.as_str())
        {
            problems.push(format!("{f}: module `{top}` is in no layer of ARCHITECTURE.md"));
        }
    }
    // Rule 1: no reference up the order.
    for (file, rs) in &refs {
        let Some(from) = module_of(file).first().cloned() else { continue };
        let Some(&(lf, lname)) = layer_of.get(from.as_str()) else { continue };
        for r in rs {
            let to = &r.path[0];
            let Some(&(lt, tname)) = layer_of.get(to.as_str()) else { continue };
            if lt > lf && !exempt.contains(&(file.to_string(), to.clone())) {
                problems.push(format!(
                    "src/{file}:{}: `crate::{}` runs up from layer `{lname}` ({from}) to layer `{tname}` ({to})",
                    r.line,
                    r.path.join("::")
                ));
            }
        }
    }
    // Rule 2: no loop between files. Re-exports: name -> path, per file.
    let reexports: BTreeMap<&str, BTreeMap<&str, &[String]>> = refs
        .iter()
        .map(|(f, rs)| {
            (
                *f,
                rs.iter()
                    .filter(|r| r.reexport)
                    .map(|r| (r.path.last().unwrap().as_str(), r.path.as_slice()))
                    .collect(),
            )
        })
        .collect();
    let resolve = |path: &[String]| -> String {
        let mut path = path.to_vec();
        for _ in 0..16 {
            let (file, rest) = module_file(&files, &path);
            match rest.first().and_then(|name| reexports.get(file.as_str())?.get(name.as_str())) {
                Some(target) => {
                    let mut next = target.to_vec();
                    next.extend(rest[1..].iter().cloned());
                    path = next;
                }
                None => return file,
            }
        }
        module_file(&files, &path).0
    };
    let mut edges: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (file, rs) in &refs {
        for r in rs.iter().filter(|r| !r.reexport) {
            let target = resolve(&r.path);
            if target != *file {
                edges.entry(file.to_string()).or_default().entry(target).or_insert(r.line);
            }
        }
    }
    for cycle in cycles(&files, &edges) {
        let steps: Vec<String> =
            cycle.windows(2).map(|w| format!("src/{}:{} -> {}", w[0], edges[&w[0]][&w[1]], w[1])).collect();
        problems.push(format!("a loop between files: {}", steps.join(", ")));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the layers of ARCHITECTURE.md:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// One cycle (first file repeated at the end) through each strongly connected group of files.
fn cycles(files: &BTreeSet<String>, edges: &BTreeMap<String, BTreeMap<String, usize>>) -> Vec<Vec<String>> {
    let next = |f: &str| edges.get(f).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(f) = stack.pop() {
            for n in next(&f) {
                if seen.insert(n.clone()) {
                    stack.push(n);
                }
            }
        }
        seen
    };
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for f in files {
        if done.contains(f) || !reach(f).contains(f) {
            continue;
        }
        // Shortest path back to `f` (breadth first), which is one cycle of its group.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([f.clone()]);
        'search: while let Some(g) = queue.pop_front() {
            for n in next(&g) {
                if n == *f {
                    let mut cycle = vec![g.clone()];
                    let mut at = g.clone();
                    while at != *f {
                        at = prev[&at].clone();
                        cycle.push(at.clone());
                    }
                    cycle.reverse();
                    cycle.push(f.clone());
                    out.push(cycle);
                    break 'search;
                }
                if !prev.contains_key(&n) && n != *f {
                    prev.insert(n.clone(), g.clone());
                    queue.push_back(n);
                }
            }
        }
        // Mark the whole group so that it is reported once.
        let back = reach(f);
        for g in back.iter().filter(|g| reach(g).contains(f)) {
            done.insert(g.clone());
        }
    }
    out
}

/// Every file ARCHITECTURE.md's code map names exists and every library source file is in it;
/// every type and function path it names (`RunConfig`, `nn::grads::contiguous`) is in the code.
#[test]
fn architecture_md_names_what_exists_and_maps_every_file() {
    let root = src_root();
    let crates = root.join("../..");
    let doc = std::fs::read_to_string(root.join("../../../ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();

    // The code map: the first cell of each table row up to the next heading; a bare file name
    // after a path (`optim/lr.rs`, `ema.rs`) is in the same folder.
    let map_start = doc.find("## Code map").expect("ARCHITECTURE.md has a code map");
    let map_end = map_start + doc[map_start..].find("\n## ").unwrap_or(doc.len() - map_start);
    let mut mapped_files = BTreeSet::new();
    let mut mapped_dirs = Vec::new();
    for row in doc[map_start..map_end].lines().filter(|l| l.starts_with("| `")) {
        let cell = row[1..].split('|').next().unwrap();
        let mut dir = String::new();
        for name in cell.split('`').skip(1).step_by(2) {
            let path = if name.contains('/') && !name.ends_with('/') {
                dir = name[..name.rfind('/').unwrap() + 1].to_string();
                name.to_string()
            } else if name.ends_with('/') {
                mapped_dirs.push(name.to_string());
                if !root.join(name).is_dir() {
                    problems.push(format!("code map: folder `{name}` is not in src/"));
                }
                continue;
            } else {
                format!("{dir}{name}")
            };
            if !root.join(&path).is_file() {
                problems.push(format!("code map: `{path}` is not a file of src/"));
            }
            mapped_files.insert(path);
        }
    }
    let mut list = Vec::new();
    rust_files(&root, &root, &mut list);
    for f in &list {
        let is_root = f == "lib.rs" || f.ends_with("/mod.rs") && !mapped_files.contains(f);
        if !is_root && !mapped_files.contains(f) && !mapped_dirs.iter().any(|d| f.starts_with(d.as_str())) {
            problems.push(format!("src/{f} is not in ARCHITECTURE.md's code map"));
        }
    }

    // Every source text of both crates, for the names.
    let mut sources = String::new();
    for dir in ["ddmlab/src", "ddmlab/tests", "ddmlab/examples", "ddmlab-cli/src"] {
        let base = crates.join(dir);
        let mut files = Vec::new();
        rust_files(&base, &base, &mut files);
        for f in files {
            sources.push_str(&std::fs::read_to_string(base.join(f)).unwrap());
            sources.push('\n');
        }
    }
    let in_code = |w: &str| has_word(&sources, w);
    for token in doc.split('`').skip(1).step_by(2) {
        let name = token.trim_end_matches("()");
        let segs: Vec<&str> = name.split("::").collect();
        if segs.iter().any(|s| s.is_empty() || !s.chars().all(is_ident)) {
            continue; // not a Rust path (a command, a config key, a formula)
        }
        let is_type =
            |s: &str| s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase());
        if segs.len() == 1 && !is_type(segs[0]) {
            continue; // a plain word
        }
        if is_type(segs[0]) {
            // A type (or its item): the type is in the code, and so is the item's name.
            if !in_code(segs[0]) || segs.len() > 1 && !in_code(segs[1]) {
                problems.push(format!("ARCHITECTURE.md names `{token}`, which is not in the code"));
            }
            continue;
        }
        // A module path: its longest module prefix is a file of the library (or of the CLI),
        // and the item after it is named in that file.
        let resolved = (1..=segs.len()).rev().find_map(|k| {
            let stem = segs[..k].join("/");
            [
                root.join(format!("{stem}.rs")),
                root.join(format!("{stem}/mod.rs")),
                crates.join(format!("ddmlab-cli/src/{stem}.rs")),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .map(|p| (k, p))
        });
        match resolved {
            None => {
                if !["crate", "super", "self", "std", "burn"].contains(&segs[0]) {
                    problems.push(format!("ARCHITECTURE.md names `{token}`: no module `{}`", segs[0]));
                }
            }
            Some((k, file)) if k < segs.len() => {
                let text = std::fs::read_to_string(&file).unwrap();
                let item = segs[k];
                if !has_word(&text, item) {
                    problems.push(format!("ARCHITECTURE.md names `{token}`: `{item}` is not in {}", file.display()));
                }
            }
            Some(_) => {}
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "ARCHITECTURE.md is stale ({}):\n{}", problems.len(), problems.join("\n"));
}

/// The math modules do no IO (ARCHITECTURE.md's "Math never does IO").
#[test]
fn math_modules_read_and_write_no_files() {
    let root = src_root();
    let mut list = Vec::new();
    rust_files(&root, &root, &mut list);
    let math = ["diffusion/", "nn/", "optim/", "models/", "config/", "recipes/", "tokenizer/"];
    let mut problems = Vec::new();
    for f in list.iter().filter(|f| math.iter().any(|m| f.starts_with(m)) && *f != "tokenizer/store.rs") {
        let code = code(&std::fs::read_to_string(root.join(f)).unwrap());
        for (i, line) in code.lines().enumerate() {
            for needle in ["std::fs", "fs::", "File::", "OpenOptions", "atomic::write", "crate::atomic"] {
                if line.contains(needle) {
                    problems.push(format!("src/{f}:{}: `{needle}` in a math module", i + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
