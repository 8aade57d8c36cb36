//! The module map has no import cycles.
//!
//! Reads every `src/**/*.rs`, draws which module names which (`use crate::…`, `super::…`,
//! `self::…`, a child module's name, and the same paths inside expressions, types and macro
//! arguments), and fails on any cycle, printing it with the paths that make each edge. Two
//! granularities: the top-level modules (`collector`, `report`, `schedule`, …), and, inside the
//! folders named in [`SPLIT`], their child modules (`schedule::file`, `report::build`, …).
//!
//! What does not count: code under `#[cfg(test)]` (a test may use anything), and a folder's own
//! `pub use` of its children (the folder's facade: a name reached through it counts as the child
//! that defines it; a re-exported name the folder's own code uses is an edge to that child). An
//! edge may be allowed only in [`ALLOWED`], with the cycle it closes named; an allowed edge that no
//! longer exists fails the test, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Folders whose child modules are nodes of their own graph.
const SPLIT: &[&str] = &["schedule", "report", "station"];

/// Edges left in place although they close a cycle: (from, to, the cycle it closes and why).
/// Empty: the map has no cycle.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// A module path named somewhere: where (file, module path at the site) and what.
struct Reference {
    file: PathBuf,
    site: Vec<String>,
    path: Vec<String>,
    /// `pub use` (a re-export), as opposed to a use or a path in code.
    reexport: bool,
}

/// Collects the module paths one file names.
struct Collector<'a> {
    file: &'a Path,
    /// The module path at the current point (the file's, plus inline `mod`s).
    site: Vec<String>,
    modules: &'a BTreeSet<Vec<String>>,
    out: Vec<Reference>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every path a `use` tree names, each ending at the name it brings in (`self` dropped).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => out.push(prefix.clone()),
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            p.push(n.ident.to_string());
            out.push(p);
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push(p);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl Collector<'_> {
    /// Record `path` when it names a module of this crate (absolute, relative to the site, or a
    /// child of the site).
    fn record(&mut self, path: Vec<String>, reexport: bool) {
        let Some(first) = path.first() else {
            return;
        };
        let local = matches!(first.as_str(), "crate" | "super" | "self")
            || {
                let mut child = self.site.clone();
                child.push(first.clone());
                self.modules.contains(&child)
            }
            || (path.len() == 1 && self.site.len() == 1 && SPLIT.contains(&self.site[0].as_str()));
        if local {
            self.out.push(Reference {
                file: self.file.to_path_buf(),
                site: self.site.clone(),
                path,
                reexport,
            });
        }
    }

    /// Paths written inside a macro's arguments (`format!`, `matches!`, …): token runs
    /// `crate :: a :: b`, `super :: …`, `self :: …`.
    fn scan_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let toks: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                proc_macro2::TokenTree::Group(g) => self.scan_tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id)
                    if matches!(id.to_string().as_str(), "crate" | "super" | "self") =>
                {
                    let mut path = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        let colons = matches!(
                            (toks.get(j), toks.get(j + 1)),
                            (Some(proc_macro2::TokenTree::Punct(a)), Some(proc_macro2::TokenTree::Punct(b)))
                                if a.as_char() == ':' && b.as_char() == ':'
                        );
                        match (colons, toks.get(j + 2)) {
                            (true, Some(proc_macro2::TokenTree::Ident(next))) => {
                                path.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if path.len() > 1 {
                        self.record(path, false);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_cfg_test(item_attrs(item)) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // `mod x;` is a file of its own; an inline `mod x { … }` is a module inside this one.
        if let Some((_, items)) = &m.content {
            self.site.push(m.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.site.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut paths);
        let reexport = matches!(u.vis, syn::Visibility::Public(_));
        for p in paths {
            self.record(p, reexport);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.record(
            p.segments.iter().map(|s| s.ident.to_string()).collect(),
            false,
        );
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.scan_tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The module path of a source file under `src`: `a.rs`, `a/mod.rs` → `a`; `a/b.rs` → `a::b`;
/// `lib.rs` → the crate root (empty).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// One edge of a graph, with the references that make it (file and path, for the message).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The import graphs of the crate under `src`: the top-level one, then one per [`SPLIT`] folder
/// present.
fn graphs(src: &Path) -> Vec<(String, Graph)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // `main.rs` is the binary: it names the library as `loa::`, not `crate::`.
    files.retain(|f| f.file_name().is_none_or(|n| n != "main.rs"));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut refs = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", f.display()));
        let mut c = Collector {
            file: f.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(f),
            site: module_of(src, f),
            modules: &modules,
            out: Vec::new(),
        };
        c.visit_file(&ast);
        refs.extend(c.out);
    }

    // Absolute module path of each reference.
    let absolute = |r: &Reference| -> Vec<String> {
        let mut base = r.site.clone();
        let mut rest = r.path.as_slice();
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            _ => {}
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        base
    };
    // What each split folder re-exports from which child: name → child.
    let mut reexports: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in &refs {
        let abs = absolute(r);
        if r.reexport
            && r.site.len() == 1
            && SPLIT.contains(&r.site[0].as_str())
            && abs.len() >= 3
            && abs[0] == r.site[0]
            && modules.contains(&abs[..2])
            && let Some(name) = abs.last()
        {
            reexports
                .entry(abs[0].clone())
                .or_default()
                .insert(name.clone(), abs[1].clone());
        }
    }
    let top = |abs: &[String]| -> Option<String> {
        let first = abs.first()?;
        modules
            .contains(&vec![first.clone()])
            .then(|| first.clone())
    };
    let sub = |abs: &[String]| -> Option<String> {
        let folder = abs.first()?;
        if !SPLIT.contains(&folder.as_str()) {
            return None;
        }
        let Some(second) = abs.get(1) else {
            return Some(folder.clone());
        };
        if modules.contains(&vec![folder.clone(), second.clone()]) {
            return Some(format!("{folder}::{second}"));
        }
        match reexports.get(folder).and_then(|m| m.get(second)) {
            Some(child) => Some(format!("{folder}::{child}")),
            None => Some(folder.clone()),
        }
    };

    let mut out: Vec<(String, Graph)> = vec![("top-level modules".into(), Graph::new())];
    for folder in SPLIT {
        if modules.contains(&vec![folder.to_string()]) {
            out.push((format!("{folder}/"), Graph::new()));
        }
    }
    for r in &refs {
        let abs = absolute(r);
        let why = format!("{}: {}", r.file.display(), r.path.join("::"));
        if let (Some(a), Some(b)) = (top(&r.site), top(&abs))
            && a != b
        {
            let g = &mut out[0].1;
            g.entry(b.clone()).or_default();
            g.entry(a)
                .or_default()
                .entry(b)
                .or_default()
                .insert(why.clone());
        }
        if let (Some(a), Some(b)) = (sub(&r.site), sub(&abs))
            && a != b
            && a.split("::").next() == b.split("::").next()
        {
            // A folder's `pub use` of its own children is its facade, not a dependency.
            let facade = r.reexport && r.site.len() == 1;
            let folder = format!("{}/", a.split("::").next().unwrap_or(""));
            if !facade && let Some((_, g)) = out.iter_mut().find(|(n, _)| *n == folder) {
                g.entry(b.clone()).or_default();
                g.entry(a).or_default().entry(b).or_default().insert(why);
            }
        }
    }
    out
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flat_map(|m| m.keys()) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One cycle through `comp` (a strongly connected component), as `a → b → … → a`, each edge
/// with the references that make it.
fn describe(g: &Graph, comp: &[String]) -> String {
    let inside: BTreeSet<&str> = comp.iter().map(String::as_str).collect();
    let start = comp[0].as_str();
    // Breadth-first from start back to start, inside the component.
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut end = None;
    'search: while let Some(v) = queue.pop_front() {
        for w in g[v].keys().map(String::as_str) {
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                end = Some(v);
                break 'search;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    // end ← … ← start, walked back, then turned round.
    let mut chain = Vec::new();
    let mut v = end.unwrap_or(start);
    while v != start {
        chain.push(v);
        v = prev[v];
    }
    chain.reverse();
    let mut path = vec![start];
    path.extend(chain);
    path.push(start);
    let mut text = format!("cycle: {}\n", path.join(" → "));
    for pair in path.windows(2) {
        text.push_str(&format!("  {} → {} because of:\n", pair[0], pair[1]));
        for why in g[pair[0]][pair[1]].iter().take(5) {
            text.push_str(&format!("    {why}\n"));
        }
    }
    text
}

/// Every cycle of the graphs of `src`, with the allowed edges removed; and every allowed edge
/// that does not exist.
fn problems(src: &Path, allowed: &[(&str, &str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut used = BTreeSet::new();
    for (name, mut g) in graphs(src) {
        for (i, (a, b, _)) in allowed.iter().enumerate() {
            if g.get_mut(*a).and_then(|m| m.remove(*b)).is_some() {
                used.insert(i);
            }
        }
        for comp in cycles(&g) {
            out.push(format!("{name}: {}", describe(&g, &comp)));
        }
    }
    for (i, (a, b, cycle)) in allowed.iter().enumerate() {
        if !used.contains(&i) {
            out.push(format!(
                "allowed edge {a} → {b} ({cycle}) no longer exists: remove it from ALLOWED"
            ));
        }
    }
    out
}

#[test]
fn the_module_map_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src, ALLOWED);
    assert!(
        found.is_empty(),
        "import cycles in src/ (break them, or allow an edge in ALLOWED naming the cycle):\n{}",
        found.join("\n")
    );
    // The graphs are not empty: the reading works (a map with no edge has no cycle either).
    let g = graphs(&src);
    let top = &g[0].1;
    assert!(
        top.get("collector")
            .is_some_and(|m| m.contains_key("report")),
        "the top-level graph lacks collector → report: the reading is broken"
    );
    assert!(
        g.iter().any(|(n, g)| n == "schedule/"
            && g.get("schedule::validate")
                .is_some_and(|m| m.contains_key("schedule::file"))),
        "the schedule/ graph lacks validate → file: the reading is broken"
    );
}

/// The check finds cycles made every way it reads: `use crate::…`, `super::…` inside a split
/// folder, a name reached through a folder's re-export, a re-exported name the folder's own code
/// uses, a path in code and one in a macro; and ignores `#[cfg(test)]` code and a folder's
/// facade. (The proof that `the_module_map_has_no_import_cycles` can fail.)
#[test]
fn cycles_are_found_and_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&src)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod report;\n");
    write("a.rs", "use crate::b::B;\npub struct A;\n");
    write(
        "b.rs",
        "pub struct B;\npub fn f() -> usize { std::mem::size_of::<crate::a::A>() }\n",
    );
    write(
        "report/mod.rs",
        "pub mod x;\npub mod y;\npub mod z;\npub use x::X;\npub use y::Y;\npub use z::Z;\n\
         pub struct E;\npub fn r() { let _ = Z; }\n\
         #[cfg(test)]\nmod tests { use crate::a::A; }\n",
    );
    write(
        "report/x.rs",
        "pub struct X;\npub fn g() { let _ = format!(\"{}\", super::Y::N); }\n",
    );
    write(
        "report/y.rs",
        "pub struct Y;\nimpl Y { pub const N: u8 = 0; }\nuse super::X;\n",
    );
    write(
        "report/z.rs",
        "pub struct Z;\npub fn e() -> super::E { super::E }\n",
    );
    let found = problems(&src, &[]);
    assert_eq!(found.len(), 3, "{found:#?}");
    let has = |start: &str| found.iter().find(|f| f.starts_with(start));
    let ab = has("top-level modules: cycle: a → b → a").unwrap_or_else(|| panic!("{found:#?}"));
    assert!(ab.contains("src/b.rs: crate::a::A"), "{ab}");
    assert!(
        has("report/: cycle: report::x → report::y → report::x").is_some(),
        "{found:#?}"
    );
    let rz =
        has("report/: cycle: report → report::z → report").unwrap_or_else(|| panic!("{found:#?}"));
    assert!(rz.contains("src/report/z.rs: super::E"), "{rz}");
    // Allowing one edge of each breaks them; allowing an edge that is not there is a problem.
    let found = problems(
        &src,
        &[
            ("b", "a", "a ↔ b"),
            ("report::y", "report::x", "x ↔ y"),
            ("report::z", "report", "report ↔ z"),
            ("a", "report", "none"),
        ],
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("allowed edge a → report"), "{}", found[0]);
}
