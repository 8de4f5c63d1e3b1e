//! Two rules of how `src/lib/` is put together. No import cycles between the
//! files of one folder: sibling modules use each other one way (a part that
//! needs its whole is its child, in the whole's folder). And the layers point
//! one way: `core` (a crate of its own, which
//! the compiler keeps apart) <- `clock` <- `transport`, `probe` <- `runtime`
//! <- `config` <- `cli`, `bench` (and `cli` may use `bench`, whose subcommand
//! it runs). This reads every source file and fails naming each `crate::`
//! path that points up or sideways. `cargo test --test layers` runs it alone.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may use lower layers only
/// (and itself).
const LAYERS: &[(&str, u8)] = &[
    ("core", 0),
    ("clock", 1),
    ("transport", 2),
    ("probe", 2),
    ("runtime", 3),
    ("config", 4),
    ("bench", 5),
    ("cli", 5),
];

/// Arrows allowed within a layer.
const SIDEWAYS: &[(&str, &str)] = &[("cli", "bench")];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and doc comments; the code
/// has no block comments that name paths).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` names through `crate::`: `crate::a::x` and
/// every first segment of `crate::{a::x, b::{y, z}}`.
fn used_modules(text: &str) -> Vec<String> {
    names_after(text, "crate::")
}

/// The first segments of the paths `text` starts with `prefix` (`crate::`,
/// `super::`, `crate::runtime::jobs::`), groups included.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix) {
        let begin = from + at;
        let start = begin + prefix.len();
        from = start;
        if begin > 0 && {
            let b = bytes[begin - 1];
            b.is_ascii_alphanumeric() || b == b'_' || b == b':'
        } {
            continue; // `gsp_crate::`, or `super::` inside `super::super::`
        }
        if bytes.get(start) == Some(&b'{') {
            // Walk the group: at depth 1, the identifier after `{` or `,`.
            let mut depth = 0;
            let mut expect_ident = false;
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        expect_ident = depth == 1;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect_ident = true,
                    c if expect_ident && (c.is_ascii_alphabetic() || c == b'_') => {
                        let end = text[i..]
                            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                            .map_or(text.len(), |e| i + e);
                        out.push(text[i..end].to_owned());
                        expect_ident = false;
                        i = end;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let end = text[start..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(text.len(), |e| start + e);
            out.push(text[start..end].to_owned());
        }
    }
    out
}

#[test]
fn no_module_uses_a_higher_layer() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib");
    let mut wrong = Vec::new();
    for (module, own) in LAYERS {
        if *module == "core" {
            continue; // another crate: it cannot name gsp at all
        }
        let mut files = Vec::new();
        let dir = lib.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = lib.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "no source for {module}");
        for f in files {
            let text = code(&std::fs::read_to_string(&f).unwrap());
            for used in used_modules(&text) {
                let Some(theirs) = layer(&used) else {
                    continue;
                };
                let ok =
                    used == *module || theirs < *own || SIDEWAYS.contains(&(module, used.as_str()));
                if !ok {
                    wrong.push(format!(
                        "{} ({module}, layer {own}) uses crate::{used} (layer {theirs})",
                        f.strip_prefix(&lib).unwrap().display()
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "arrows up the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_of_paths_sees_groups_and_plain_paths() {
    let text = "use crate::{core::x, runtime::{a, b}, transport};\nlet t = crate::clock::now();";
    assert_eq!(
        used_modules(text),
        ["core", "runtime", "transport", "clock"]
    );
    // Doc comments do not count.
    assert!(used_modules(&code("/// see crate::cli::main")).is_empty());
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib/lib.rs")).unwrap();
    for line in lib.lines() {
        let name = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub use gsp_core as "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = name {
            assert!(
                layer(name).is_some(),
                "{name} has no layer in tests/layers.rs"
            );
        }
    }
}

/// The module path of the folder `dir` (relative to the crate's root folder).
fn folder_path(dir: &Path, crate_root: &Path) -> String {
    dir.strip_prefix(crate_root)
        .unwrap()
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("::")
}

/// The sibling modules of folder `dir` that form cycles, each cycle sorted.
fn cycles_in(dir: &Path, crate_root: &Path) -> Vec<Vec<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut mods: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "mod" && name != "lib" {
            mods.insert(name, path);
        } else if path.join("mod.rs").is_file() {
            mods.entry(name).or_insert(path.join("mod.rs"));
        }
    }
    let folder = folder_path(dir, crate_root);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, file) in &mods {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut used = names_after(&text, "super::");
        if !folder.is_empty() {
            used.extend(names_after(&text, &format!("crate::{folder}::")));
        }
        let targets = edges.entry(name.as_str()).or_default();
        for u in used {
            if let Some((other, _)) = mods.get_key_value(&u)
                && other != name
            {
                targets.insert(other.as_str());
            }
        }
    }
    // A cycle: two modules that reach each other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            for &n in edges.get(m).into_iter().flatten() {
                if seen.insert(n) {
                    todo.push(n);
                }
            }
        }
        seen
    };
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for m in edges.keys() {
        let from_m = reach(m);
        if !from_m.contains(m) {
            continue;
        }
        let cycle: Vec<String> = from_m
            .iter()
            .filter(|n| reach(n).contains(m))
            .map(|n| (*n).to_owned())
            .collect();
        found.insert(cycle);
    }
    found.into_iter().collect()
}

fn folders(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            folders(&path, out);
        }
    }
}

#[test]
fn no_import_cycles_between_the_files_of_a_folder() {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib");
    let core = lib.join("core");
    let mut dirs = Vec::new();
    folders(&lib, &mut dirs);
    let mut found = Vec::new();
    for dir in dirs {
        // The core crate's paths start at its own root.
        let root = if dir.starts_with(&core) { &core } else { &lib };
        for cycle in cycles_in(&dir, root) {
            found.push(format!(
                "{}: {}",
                dir.strip_prefix(&lib).unwrap().display(),
                cycle.join(" <-> ")
            ));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn a_cycle_between_two_files_is_found() {
    let dir = std::env::temp_dir().join(format!("gsp-layers-{}", std::process::id()));
    let folder = dir.join("a");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("x.rs"), "use super::y::Y;\npub struct X;\n").unwrap();
    std::fs::write(
        folder.join("y.rs"),
        "use crate::a::{x::X, z};\npub struct Y;\n",
    )
    .unwrap();
    std::fs::write(folder.join("z.rs"), "pub struct Z;\n").unwrap();
    assert_eq!(
        cycles_in(&folder, &dir),
        [vec!["x".to_owned(), "y".to_owned()]]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
