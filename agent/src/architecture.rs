//! The architecture test (in the habit of rust-analyzer's tidy tests): every top-level module
//! of `agent/src` may use only the modules that [`LAYERS`] puts below it, `model` uses nothing
//! of the crate, and `exit` is a leaf. The table mirrors the layout in `../shared/DESIGN.md`.
//!
//! A dependency is any `crate::<module>` path in code (a `use` line, grouped or not, or a
//! path written inline), and `super::` paths that climb out of a top-level module. Comments
//! are left out, so doc links do not count.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, top to bottom. A module uses only modules of later rows.
const LAYERS: &[&str] = &[
    "cli",
    "daemon",
    "lifecycle",
    "checks",
    "install",
    "apply",
    "render",
    "compute",
    "config",
    "facts",
    "auth",
    "report",
    "net",
    "model",
    "exit",
];

/// Modules that may use nothing of the crate.
const LEAVES: &[&str] = &["model", "exit"];

/// Files at the root that only wire the modules together.
const ROOT_FILES: &[&str] = &["lib.rs", "main.rs", "architecture.rs"];

/// One forbidden dependency, as a line of the test's failure message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The file, relative to the source root.
    pub file: PathBuf,
    /// Its top-level module.
    pub from: String,
    /// The module it uses.
    pub to: String,
    /// Why that is not allowed.
    pub why: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} uses {} ({})",
            self.file.display(),
            self.from,
            self.to,
            self.why
        )
    }
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The text of a Rust file without its comments (line, doc and block comments). String
/// literals are kept: a `crate::` inside one is rare enough to be worth a look anyway.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut depth = 0usize;
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if depth > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                depth -= 1;
            } else if c == '/' && chars.peek() == Some(&'*') {
                chars.next();
                depth += 1;
            } else if c == '\n' {
                out.push('\n');
            }
            continue;
        }
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                depth = 1;
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules a file's code names through `crate::` (grouped uses included) or
/// through `super::` chains that reach the crate root (`depth` is the file's module depth: 1 for
/// `daemon.rs` and `cli/mod.rs`, 2 for `cli/init.rs`, and so on).
fn used_modules(code: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(found) = code[i..].find("crate::") {
        let at = i + found;
        i = at + "crate::".len();
        if at > 0 && is_ident(bytes[at - 1] as char) {
            continue;
        }
        collect_after(&code[i..], &mut out);
    }
    // `super::super::x` in `m/a.rs` (depth 2) is `crate::x`: a chain of `depth` links reaches
    // the crate root.
    let mut i = 0;
    while let Some(found) = code[i..].find("super::") {
        let at = i + found;
        if at > 0 && (is_ident(bytes[at - 1] as char) || bytes[at - 1] == b':') {
            i = at + 1;
            continue;
        }
        let mut rest = &code[at..];
        let mut links = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            links += 1;
            rest = r;
        }
        i = at + links * "super::".len();
        if links >= depth {
            collect_after(rest, &mut out);
        }
    }
    out
}

/// The module names at the start of a path (`x::...`) or of a group (`{x, y::z}`).
fn collect_after(rest: &str, out: &mut BTreeSet<String>) {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (k, ch) in group.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        // Only the first segment of each top-level item of the group.
        let mut level = 0;
        let mut start = true;
        let mut name = String::new();
        for ch in group[..end].chars() {
            match ch {
                '{' => level += 1,
                '}' => level -= 1,
                ',' if level == 0 => {
                    if !name.is_empty() {
                        out.insert(std::mem::take(&mut name));
                    }
                    start = true;
                    continue;
                }
                _ => {}
            }
            if start && level == 0 {
                if is_ident(ch) {
                    name.push(ch);
                } else if !ch.is_whitespace() {
                    start = false;
                }
            }
            if start && ch.is_whitespace() && !name.is_empty() {
                start = false;
            }
        }
        if !name.is_empty() {
            out.insert(name);
        }
        return;
    }
    let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
    if !name.is_empty() && name != "self" {
        out.insert(name);
    }
}

/// The forbidden dependencies under the source root `src`.
pub fn violations(src: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in rust_files(src) {
        let Ok(rel) = file.strip_prefix(src) else {
            continue;
        };
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.len() == 1 && ROOT_FILES.contains(&parts[0].as_str()) {
            continue;
        }
        let from = parts[0].trim_end_matches(".rs").to_owned();
        let Some(from_rank) = rank(&from) else {
            out.push(Violation {
                file: rel.to_path_buf(),
                from: from.clone(),
                to: from,
                why: "a top-level module missing from the layer table",
            });
            continue;
        };
        // The module depth, as `super::` counts it: `m.rs` and `m/mod.rs` are 1, `m/a.rs` and
        // `m/a/mod.rs` are 2.
        if parts.last().is_some_and(|p| p == "mod.rs") {
            parts.pop();
        }
        let depth = parts.len();
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for to in used_modules(&strip_comments(&text), depth) {
            if to == from {
                continue;
            }
            let why = if LEAVES.contains(&from.as_str()) {
                "this module uses nothing of the crate"
            } else {
                match rank(&to) {
                    None => "not a top-level module of the layer table",
                    Some(r) if r < from_rank => "the layer table puts it above",
                    Some(_) => continue,
                }
            };
            out.push(Violation {
                file: rel.to_path_buf(),
                from: from.clone(),
                to,
                why,
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = violations(&src);
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            lines.is_empty(),
            "{} forbidden dependencies (layers, top to bottom: {}):\n{}",
            lines.len(),
            LAYERS.join(" > "),
            lines.join("\n")
        );
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_use_that_climbs_the_table_is_reported() {
        let dir = tree(&[
            ("lib.rs", "pub mod cli; pub mod render; pub mod model;"),
            ("cli/mod.rs", "use crate::render::Plan;\n"),
            (
                "render/mod.rs",
                "//! see [`crate::cli`]\nuse crate::{model::Paths, apply};\nfn f() { crate::cli::run(); }\n",
            ),
            ("render/kubelet.rs", "use super::super::daemon::X;\n"),
            ("model/mod.rs", "use crate::exit::Code;\n"),
            ("exit.rs", "pub enum Code {}\n"),
            ("daemon.rs", "use super::cli;\n"),
            ("extra/mod.rs", ""),
        ]);
        let got: Vec<(String, String, String)> = violations(dir.path())
            .into_iter()
            .map(|v| (v.file.display().to_string(), v.from, v.to))
            .collect();
        let want: Vec<(String, String, String)> = [
            ("daemon.rs", "daemon", "cli"),
            ("extra/mod.rs", "extra", "extra"),
            ("model/mod.rs", "model", "exit"),
            ("render/kubelet.rs", "render", "daemon"),
            ("render/mod.rs", "render", "apply"),
            ("render/mod.rs", "render", "cli"),
        ]
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn grouped_and_nested_uses_name_each_module() {
        let got = used_modules("use crate::{a::{b, c}, d, e::f as g};", 2);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["a", "d", "e"].map(String::from)
        );
        assert!(used_modules("use super::x;", 2).is_empty());
        assert_eq!(
            used_modules("use super::super::x;", 2)
                .into_iter()
                .collect::<Vec<_>>(),
            ["x"].map(String::from)
        );
        assert!(used_modules("let s = my_crate::x;", 1).is_empty());
    }

    #[test]
    fn comments_do_not_count_but_code_after_them_does() {
        let code = strip_comments("/* crate::a /* nested crate::b */ */ crate::c // crate::d\n");
        assert_eq!(
            used_modules(&code, 1).into_iter().collect::<Vec<_>>(),
            ["c"].map(String::from)
        );
    }
}
