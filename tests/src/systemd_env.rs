//! How systemd reads an `EnvironmentFile=` and expands `$VAR` in `ExecStart=`, so that a test
//! can compute the exact argv a unit's program gets without booting systemd (the e2e test
//! checks this module against a real systemd).
//!
//! Faithful to systemd (v252, Debian bookworm's):
//! - `parse_env_file()` (src/basic/env-file.c): lines of `KEY=VALUE`; `#` and `;` start a
//!   comment line; whitespace around the key and at the end of an unquoted value is dropped;
//!   a value may be made of quoted and unquoted pieces; inside `'...'` everything is literal;
//!   inside `"..."` a backslash escapes `"`, `\`, `` ` `` and `$` (and a newline continues the
//!   line) and is kept before anything else; outside quotes a backslash escapes the next
//!   character (a newline: the line continues);
//! - `replace_env_argv()` (src/basic/env-util.c): a word that is exactly `$VAR` becomes the
//!   variable's value split into words by `extract_first_word()` with `EXTRACT_RELAX` and
//!   `EXTRACT_UNQUOTE` (src/basic/extract-word.c): words end at whitespace; `'` and `"` quote
//!   (the quote characters are removed); a backslash, inside or outside quotes, makes the next
//!   character literal and is removed; an unterminated quote or escape ends at the end.

use std::collections::BTreeMap;

/// The variables of an environment file, as systemd reads them (later assignments win).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    let mut out = BTreeMap::new();
    let mut state = S::PreKey;
    let mut key = String::new();
    let mut value = String::new();
    // Length of the value before its trailing (unquoted) whitespace.
    let mut value_end: Option<usize> = None;
    let mut key_end: Option<usize> = None;
    let push = |key: &mut String,
                value: &mut String,
                key_end: &mut Option<usize>,
                value_end: &mut Option<usize>,
                out: &mut BTreeMap<String, String>| {
        if let Some(n) = key_end.take() {
            key.truncate(n);
        }
        if let Some(n) = value_end.take() {
            value.truncate(n);
        }
        if !key.is_empty() {
            out.insert(std::mem::take(key), std::mem::take(value));
        }
        key.clear();
        value.clear();
    };
    for c in text.chars() {
        let newline = c == '\n' || c == '\r';
        let white = c == ' ' || c == '\t' || newline;
        match state {
            S::PreKey => {
                if c == '#' || c == ';' {
                    state = S::Comment;
                } else if !white {
                    state = S::Key;
                    key.push(c);
                }
            }
            S::Key => {
                if newline {
                    state = S::PreKey;
                    key.clear();
                    key_end = None;
                } else if c == '=' {
                    state = S::PreValue;
                    value_end = None;
                } else {
                    if !white {
                        key_end = None;
                    } else if key_end.is_none() {
                        key_end = Some(key.len());
                    }
                    key.push(c);
                }
            }
            S::PreValue => {
                if newline {
                    state = S::PreKey;
                    push(&mut key, &mut value, &mut key_end, &mut value_end, &mut out);
                } else if c == '\'' {
                    state = S::Single;
                } else if c == '"' {
                    state = S::Double;
                } else if c == '\\' {
                    state = S::ValueEscape;
                } else if !white {
                    state = S::Value;
                    value.push(c);
                }
            }
            S::Value => {
                if newline {
                    state = S::PreKey;
                    push(&mut key, &mut value, &mut key_end, &mut value_end, &mut out);
                } else if c == '\\' {
                    state = S::ValueEscape;
                    value_end = None;
                } else {
                    if !white {
                        value_end = None;
                    } else if value_end.is_none() {
                        value_end = Some(value.len());
                    }
                    value.push(c);
                }
            }
            S::ValueEscape => {
                state = S::Value;
                if !newline {
                    value.push(c);
                }
            }
            S::Single => {
                if c == '\'' {
                    state = S::PreValue;
                } else {
                    value.push(c);
                }
            }
            S::Double => {
                if c == '"' {
                    state = S::PreValue;
                } else if c == '\\' {
                    state = S::DoubleEscape;
                } else {
                    value.push(c);
                }
            }
            S::DoubleEscape => {
                state = S::Double;
                if "\"\\`$".contains(c) {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
            }
            S::Comment => {
                if c == '\\' {
                    state = S::CommentEscape;
                } else if newline {
                    state = S::PreKey;
                }
            }
            S::CommentEscape => state = S::Comment,
        }
    }
    if matches!(
        state,
        S::PreValue | S::Value | S::ValueEscape | S::Single | S::Double | S::DoubleEscape
    ) {
        push(&mut key, &mut value, &mut key_end, &mut value_end, &mut out);
    }
    out
}

/// The words an unbraced `$VAR` on an `ExecStart=` line becomes.
pub fn split_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        word.get_or_insert_with(String::new).push(n);
                    }
                } else {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    word.get_or_insert_with(String::new);
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        word.get_or_insert_with(String::new).push(n);
                    }
                } else if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
                    words.extend(word.take());
                } else {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
        }
    }
    words.extend(word);
    words
}

/// The argv of `ExecStart=PROGRAM $VAR` with `VAR` from `env_file`: the program, then the
/// variable's words (none when it is not set).
pub fn exec_argv(program: &str, var: &str, env_file: &str) -> Vec<String> {
    let env = parse_env_file(env_file);
    let mut argv = vec![program.to_owned()];
    if let Some(v) = env.get(var) {
        argv.extend(split_words(v));
    }
    argv
}
