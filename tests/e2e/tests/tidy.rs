//! Tidy checks over the source tree, as rust-analyzer keeps them: every `.rs` file says what it is
//! in a `//!` line; no file in a `src/` tree passes 800 lines without saying why; ARCHITECTURE.md's
//! code map names every crate, every module and every e2e test file that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LONG_FILE: usize = 800;
/// What a file over [`LONG_FILE`] lines says in its `//!` header.
const LONG_FILE_MARK: &str = "over 800 lines";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file below `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// The crates of the workspace: directories with a Cargo.toml under crates/, services/ and tests/.
fn crates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["crates", "services", "tests"] {
        for e in std::fs::read_dir(root().join(top)).unwrap().flatten() {
            if e.path().join("Cargo.toml").is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn all_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for top in ["crates", "services", "tests"] {
        rust_files(&root().join(top), &mut files);
    }
    files.sort();
    files
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let missing: Vec<String> = all_sources()
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` line saying what they are: {missing:#?}"
    );
}

#[test]
fn long_source_files_say_why() {
    let unexplained: Vec<String> = all_sources()
        .iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "src"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let lines = text.lines().count();
            let header: String = text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase();
            (lines > LONG_FILE && !header.contains(LONG_FILE_MARK))
                .then(|| format!("{} ({lines} lines)", relative(p)))
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "split these files, or say in their `//!` header why they are {LONG_FILE_MARK}: {unexplained:#?}"
    );
}

/// The code-map section of ARCHITECTURE.md about `dir` (`crates/mcp-runtime`): from its `###`
/// heading to the next heading.
fn section<'a>(doc: &'a str, dir: &str) -> Option<&'a str> {
    let heading = format!("### `{dir}`");
    let start = doc.find(&heading)?;
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The names a section mentions in backticks, with `dir/{a,b}` expanded to `dir/a` and `dir/b`.
fn mentioned(section: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, quoted) in section.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        if let Some((dir, rest)) = quoted.split_once("/{")
            && let Some(list) = rest.strip_suffix('}')
        {
            for item in list.split(',') {
                names.insert(format!("{dir}/{}", item.trim()));
            }
        } else {
            names.insert(quoted.trim().to_owned());
        }
    }
    names
}

/// What a module file must be called by: its path below `src/` without `.rs` (`gateway/pipeline`,
/// `tools/read`), a directory module (`mod.rs`) by its directory.
fn module_names(src: &Path, file: &Path) -> Option<(String, String)> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let rel = rel.to_string_lossy().into_owned();
    let path = match rel.strip_suffix("/mod") {
        Some(dir) => dir.to_owned(),
        None if rel == "lib" || rel == "main" => return None,
        None => rel,
    };
    let stem = path.rsplit('/').next().unwrap_or(&path).to_owned();
    Some((path, stem))
}

#[test]
fn the_code_map_names_every_crate_module_and_e2e_test() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for krate in crates() {
        let dir = relative(&krate);
        let Some(text) = section(&doc, &dir) else {
            missing.push(format!("no `### `{dir}`` section"));
            continue;
        };
        let names = mentioned(text);
        let src = krate.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let Some((path, stem)) = module_names(&src, &f) else {
                continue;
            };
            let known = [
                path.clone(),
                format!("{path}.rs"),
                format!("{path}/"),
                format!("src/{path}.rs"),
                stem.clone(),
                format!("{stem}.rs"),
            ];
            if !known.iter().any(|k| names.contains(k)) {
                missing.push(format!("{dir}: module `{path}`"));
            }
        }
    }
    let e2e = section(&doc, "tests/e2e")
        .map(mentioned)
        .unwrap_or_default();
    let mut tests = Vec::new();
    rust_files(&root().join("tests/e2e/tests"), &mut tests);
    for t in tests {
        let rel = t
            .strip_prefix(root().join("tests/e2e/tests"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let stem = rel
            .trim_end_matches(".rs")
            .trim_end_matches("/mod")
            .to_owned();
        let dir_of = rel.split('/').next().unwrap_or(&rel).to_owned();
        let known = [
            rel.clone(),
            stem.clone(),
            format!("{dir_of}/"),
            format!("tests/{rel}"),
        ];
        if !known.iter().any(|k| e2e.contains(k)) {
            missing.push(format!("tests/e2e: test file `{rel}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:#?}"
    );
}

/// `Result<_, String>` in a library's code (tests, binaries and test-only crates aside): errors are a
/// `thiserror` type of the crate, mapped to the wire in one place.
#[test]
fn library_code_has_typed_errors() {
    let mut found = Vec::new();
    for krate in crates() {
        let src = krate.join("src");
        let test_only = ["crates/test-support", "tests/e2e"].contains(&relative(&krate).as_str());
        if !src.join("lib.rs").is_file() || test_only {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let rel = relative(&f);
            if rel.ends_with("/main.rs") || rel.contains("/src/bin/") || rel.ends_with("/tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if line.contains("Result<") && line.contains(", String>") {
                    found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "give these a typed error (the crate's thiserror enum): {found:#?}"
    );
}

#[test]
fn the_section_reader_expands_brace_lists() {
    let names = mentioned("`tools/{read,write}` and `gate`, prose, `a.rs`");
    for n in ["tools/read", "tools/write", "gate", "a.rs"] {
        assert!(names.contains(n), "{n} in {names:?}");
    }
    assert!(!names.contains("prose"));
}
