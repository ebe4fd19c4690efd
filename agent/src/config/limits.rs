//! Bounds on NodeConfig input that keep every parser linear in its input: checked before the
//! parser runs, so that a small payload cannot keep `config check` (or a booting node) busy.
//!
//! libyaml (under serde_yaml_ng) rescans its stack of open flow collections for every token,
//! so its time grows with the square of the flow nesting (`[[[[...`): 1 MiB of `[` took an
//! hour. Its own recursion limit applies only after the whole stream was scanned. The scan
//! here counts flow nesting in one pass and refuses more than [`MAX_YAML_FLOW_DEPTH`].

/// Deepest nesting of `[` and `{` allowed in NodeConfig YAML/JSON text.
pub const MAX_YAML_FLOW_DEPTH: usize = 64;
/// Most flow collections and flow items (`[`, `{`, `,`) in one payload: each is a node of the
/// parsed tree for two bytes of input, the cheapest way to make a small input take gigabytes.
pub const MAX_YAML_FLOW_NODES: usize = 65_536;
/// Largest `spec.containerd.config` TOML in one document (a containerd config is a few KiB).
pub const MAX_CONTAINERD_TOML_BYTES: usize = 1024 * 1024;
/// Deepest nesting of `[` and `{` in containerd TOML (table headers count one).
pub const MAX_TOML_DEPTH: usize = 32;
/// Most YAML documents (empty ones included) in one payload.
pub const MAX_YAML_DOCUMENTS: usize = 1024;
/// Most non-empty NodeConfig documents merged by one load, over all sources.
pub const MAX_DOCUMENTS: usize = 64;
/// Largest file a `file://` source may be (the same bound as decoded user data).
pub const MAX_SOURCE_BYTES: usize = super::decode::MAX_DECODED_BYTES;

/// A flow limit that YAML text exceeds, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowExceeded {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// True for the nesting limit, false for the node limit.
    pub depth: bool,
}

/// Where the flow nesting of `text` first exceeds [`MAX_YAML_FLOW_DEPTH`], or its flow nodes
/// [`MAX_YAML_FLOW_NODES`]. Quoted scalars and comments are skipped; a bracket or comma
/// anywhere else inside a flow collection counts, so the scan may overcount (never
/// undercount) what libyaml builds.
pub fn flow_exceeded(text: &str) -> Option<FlowExceeded> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut nodes = 0usize;
    let mut line = 1usize;
    let mut line_start = 0usize;
    // The last byte that was not a space or tab on this line (None at line start).
    let mut prev: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                line_start = i + 1;
                prev = None;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' if i == line_start || matches!(bytes[i - 1], b' ' | b'\t') => {
                // A comment runs to the end of the line.
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
                continue;
            }
            b'"' | b'\'' if starts_token(prev, depth, bytes, i, line_start) => {
                i = skip_quoted(bytes, i, b, &mut line, &mut line_start);
                prev = Some(b);
                continue;
            }
            b'[' | b'{' if depth > 0 || starts_token(prev, depth, bytes, i, line_start) => {
                depth += 1;
                nodes += 1;
                if depth > MAX_YAML_FLOW_DEPTH || nodes > MAX_YAML_FLOW_NODES {
                    return Some(FlowExceeded {
                        line,
                        column: i - line_start + 1,
                        depth: depth > MAX_YAML_FLOW_DEPTH,
                    });
                }
            }
            b',' if depth > 0 => {
                nodes += 1;
                if nodes > MAX_YAML_FLOW_NODES {
                    return Some(FlowExceeded {
                        line,
                        column: i - line_start + 1,
                        depth: false,
                    });
                }
            }
            b']' | b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        prev = Some(b);
        i += 1;
    }
    None
}

/// Whether a quote or bracket at `i` starts a token: at the start of a line, after `: `,
/// `- `, `? `, a tag or anchor, or inside flow syntax (`[`, `{`, `,`).
fn starts_token(prev: Option<u8>, depth: usize, bytes: &[u8], i: usize, line_start: usize) -> bool {
    let spaced = i > line_start && matches!(bytes[i - 1], b' ' | b'\t');
    match prev {
        None => true,
        Some(b'[' | b'{' | b',') if depth > 0 => true,
        Some(b':' | b'-' | b'?') => spaced,
        // `!tag "x"` and `&anchor [` : a space after a word that began with ! or &.
        Some(_) => spaced && word_starts_with_tag_or_anchor(bytes, i, line_start),
    }
}

fn word_starts_with_tag_or_anchor(bytes: &[u8], i: usize, line_start: usize) -> bool {
    let before = &bytes[line_start..i];
    let trimmed = before
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(&before[..0], |p| &before[..=p]);
    let word_start = trimmed
        .iter()
        .rposition(|c| matches!(c, b' ' | b'\t'))
        .map_or(0, |p| p + 1);
    matches!(trimmed.get(word_start), Some(b'!' | b'&'))
}

/// The index after the quoted scalar that starts at `start` (YAML quoting: `''` inside single
/// quotes, backslash escapes inside double quotes); line counters follow embedded newlines.
fn skip_quoted(
    bytes: &[u8],
    start: usize,
    quote: u8,
    line: &mut usize,
    line_start: &mut usize,
) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                *line += 1;
                *line_start = i + 1;
            }
            b'\\' if quote == b'"' => i += 1,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            c if c == quote => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Where containerd TOML nests `[`/`{` deeper than [`MAX_TOML_DEPTH`]: the 1-based line.
/// Strings (basic, literal, multi-line) and comments are skipped. The toml crate has its own
/// recursion limit, but it reads every token first: 16 MiB of `[` took 840 MiB.
pub fn toml_depth_exceeded(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'#' => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
                continue;
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[q, q, q]);
                let (open, escapes) = (if triple { 3 } else { 1 }, q == b'"');
                i += open;
                while i < bytes.len() {
                    if escapes && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == b'\n' {
                        line += 1;
                    }
                    if bytes[i] == q && (!triple || bytes[i..].starts_with(&[q, q, q])) {
                        i += open;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_TOML_DEPTH {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_depth_exceeded(text: &str) -> Option<(usize, usize)> {
        flow_exceeded(text).map(|e| (e.line, e.column))
    }

    #[test]
    fn deep_flow_nesting_is_found_in_linear_time() {
        let deep = format!("a: 1\n---\n{}", "[".repeat(1 << 20));
        let started = std::time::Instant::now();
        assert_eq!(flow_depth_exceeded(&deep), Some((3, 65)));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let json = format!("{{\"a\": {}1{}}}", "[".repeat(70), "]".repeat(70));
        assert!(flow_depth_exceeded(&json).is_some());
        let tagged = format!("a: !!seq {}", "[".repeat(70));
        assert!(flow_depth_exceeded(&tagged).is_some());
    }

    #[test]
    fn many_flow_nodes_are_refused() {
        let wide = format!("a: [{}]\n", "[], ".repeat(MAX_YAML_FLOW_NODES));
        let e = flow_exceeded(&wide).unwrap();
        assert!(!e.depth, "{e:?}");
        let items = format!("a: [{}1]\n", "1,".repeat(MAX_YAML_FLOW_NODES));
        assert!(flow_exceeded(&items).is_some());
        let fine = format!("a: [{}1]\n", "1,".repeat(1000));
        assert_eq!(flow_exceeded(&fine), None);
    }

    #[test]
    fn toml_nesting_skips_strings_and_comments() {
        assert_eq!(
            toml_depth_exceeded(&format!("a = {}", "[".repeat(100))),
            Some(1)
        );
        let ok = [
            "[plugins.\"io.containerd.grpc.v1.cri\".registry]\nendpoint = [\"https://m\"]\n"
                .to_owned(),
            format!("a = \"{}\"\n", "[".repeat(100)),
            format!("a = '{}'\n# {}\n", "[".repeat(100), "{".repeat(100)),
            format!(
                "a = \"\"\"\n{}\n\"\"\"\nb = '''{}'''\n",
                "[".repeat(100),
                "[".repeat(100)
            ),
            format!("a = \"\\\"{}\"\n", "[".repeat(100)),
        ];
        for t in ok {
            assert_eq!(toml_depth_exceeded(&t), None, "{t}");
        }
    }

    #[test]
    fn brackets_in_strings_comments_and_block_text_do_not_count() {
        let ok = [
            format!("a: \"{}\"\n", "[".repeat(100)),
            format!("a: '{}'' {}'\n", "[".repeat(100), "{".repeat(100)),
            format!("# {}\na: 1\n", "[".repeat(100)),
            format!("a: x{}\n", "[".repeat(100)),
            "spec:\n  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n      endpoint = [\"https://m\"]\n".to_owned(),
            format!("a: [{}]\n", "[1], ".repeat(1000)),
            format!("a: [\"{}\", 1]\n", "]".repeat(100)),
        ];
        for text in ok {
            assert_eq!(flow_depth_exceeded(&text), None, "{text}");
        }
    }
}
