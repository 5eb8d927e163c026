//! The import layers of docs/architecture.md ("Who imports whom") are the code's: the test reads
//! the diagram from the doc and every `crate::` / `login_etl::` path from src/, and fails when
//! a module imports one the diagram does not list for it, when the diagram lists an import the
//! code no longer has, or when an arrow points up (to a module listed above, so no cycle).
//! Those layers are read from the file tree, so the tree must be the module tree: no `#[path]`,
//! and a module with submodules is a folder with `mod.rs`, never `x.rs` beside `x/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Edges = BTreeMap<String, BTreeSet<String>>;

/// The diagram: modules top to bottom, each with the modules it imports.
fn diagram(doc: &str) -> Vec<(String, BTreeSet<String>)> {
    let section = doc
        .split("\n## Who imports whom")
        .nth(1)
        .expect("docs/architecture.md has a \"## Who imports whom\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section's diagram is a fenced block");
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            // `module/ → a, b, c    (a comment)`; a leaf has nothing after the arrow.
            let line = line.split(" (").next().unwrap_or(line);
            let (module, imports) = line
                .split_once('→')
                .unwrap_or_else(|| panic!("diagram line without an arrow: {line:?}"));
            let imports = imports
                .split(',')
                .map(name)
                .filter(|n| !n.is_empty())
                .collect();
            (name(module), imports)
        })
        .collect()
}

/// `commands/`, `sample.rs`, `main.rs (binary)` → `commands`, `sample`, `main`.
fn name(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_suffix('/').unwrap_or(text);
    text.strip_suffix(".rs").unwrap_or(text).to_owned()
}

/// Every .rs file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/<m>.rs` or `src/<m>/…`.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    name(&first.as_os_str().to_string_lossy())
}

/// The top-level modules named after `prefix` (`crate::`, `login_etl::`) in code, not comments:
/// `crate::x::…` and each item of `crate::{x, y::z}`.
fn imports(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices(prefix) {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.insert(ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                found.insert(ident(&item));
            } else {
                found.insert(ident(rest));
            }
        }
    }
    found.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_lowercase()));
    found
}

/// The code before the file's `#[cfg(test)] mod …` (unit tests may exercise any module: the
/// layers are about what ships).
fn without_tests(code: &str) -> &str {
    let mut offset = 0;
    let mut lines = code.split_inclusive('\n');
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines.clone().map(str::trim).find(|l| !l.starts_with("#["));
            if next.is_some_and(|l| l.starts_with("mod ")) {
                return &code[..offset];
            }
        }
        offset += line.len();
    }
    code
}

/// The identifier a path starts with.
fn ident(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// What the code imports, module by module (names at the crate root that are not modules, such
/// as `VERSION`, left out).
fn code_edges(root: &Path) -> Edges {
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = Edges::new();
    for file in files {
        let module = module_of(&src, &file);
        // A module's unit tests live in its folder's `tests.rs`: left out like `mod tests {}`.
        if module == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        let code = without_tests(&code);
        let prefix = if module == "main" {
            "login_etl::"
        } else {
            "crate::"
        };
        let entry = edges.entry(module.clone()).or_default();
        entry.extend(
            imports(code, prefix)
                .into_iter()
                .filter(|m| *m != module && modules.contains(m)),
        );
    }
    edges
}

#[test]
fn every_import_is_in_the_diagram_and_points_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let layers = diagram(&doc);
    let known: BTreeSet<String> = layers.iter().map(|(m, _)| m.clone()).collect();
    let code = code_edges(root);
    let mut faults = Vec::new();
    for module in code.keys().filter(|m| !known.contains(*m)) {
        faults.push(format!("src/{module}: not in the diagram; add its line"));
    }
    for (position, (module, listed)) in layers.iter().enumerate() {
        let actual = code.get(module).cloned().unwrap_or_default();
        for missing in actual.difference(listed) {
            faults.push(format!("{module} imports {missing}: not in the diagram"));
        }
        for stale in listed.difference(&actual) {
            faults.push(format!(
                "{module} → {stale} in the diagram: the code has no such import"
            ));
        }
        let above: BTreeSet<&String> = layers[..=position].iter().map(|(m, _)| m).collect();
        for up in listed.iter().filter(|m| above.contains(m)) {
            faults.push(format!(
                "{module} → {up} points up: {up} is listed above {module}"
            ));
        }
        for unknown in listed.iter().filter(|m| !known.contains(*m)) {
            faults.push(format!(
                "{module} → {unknown}: {unknown} has no line of its own"
            ));
        }
    }
    assert!(
        faults.is_empty(),
        "docs/architecture.md \"Who imports whom\" and src/ disagree:\n{}\nthe code's imports: {code:#?}",
        faults.join("\n")
    );
}

#[test]
fn the_file_tree_is_the_module_tree() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut faults = Vec::new();
    for file in &files {
        let code = std::fs::read_to_string(file).unwrap();
        if code.lines().any(|l| l.trim_start().starts_with("#[path")) {
            faults.push(format!("{}: a #[path] attribute", file.display()));
        }
        if file.with_extension("").is_dir() {
            faults.push(format!(
                "{}: beside a folder of the same name; move it to mod.rs inside",
                file.display()
            ));
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

#[test]
fn unit_tests_at_the_end_are_left_out() {
    let code = "use crate::a;\n#[cfg(test)]\nfn helper() {}\n#[cfg(test)]\n#[path = \"x.rs\"]\nmod tests;\nuse crate::b;\n";
    let found: Vec<String> = imports(without_tests(code), "crate::")
        .into_iter()
        .collect();
    assert_eq!(found, ["a"]);
}

#[test]
fn grouped_and_plain_paths_are_both_read() {
    let code =
        "use crate::{a::B, b, c::{d, e}};\nlet x = crate::f::g();\n// crate::h\n$crate::i::j";
    let found: Vec<String> = imports(code, "crate::").into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "f", "i"]);
}
