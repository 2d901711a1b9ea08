// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived.conf's lexical layer: words, quoted strings, `#`/`!`
//! comments, braces, `include GLOB` (relative to the including file), and
//! the tree of `keyword args… [{ … }]` statements built from them.
//!
//! The grammar is keepalived's (keepalived.conf(5)): a statement is a
//! keyword and its arguments on one line; a `{` (at the end of that line,
//! or alone on the next) opens its block, `}` closes it; `{` and `}` are
//! tokens even when glued to a word; a word starting with `#` or `!` starts
//! a comment that runs to the end of the line; `"…"` is one word.

use std::fmt;
use std::path::{Path, PathBuf};

/// How deep `include` may nest (a loop of includes stops here).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a token or statement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file, as it was named (the main file) or found (includes).
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A refused configuration: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// Where (`None`: the file itself, e.g. unreadable).
    pub pos: Option<Pos>,
    /// Why.
    pub msg: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.msg),
            None => write!(f, "{}", self.msg),
        }
    }
}

/// An error at `pos`.
pub fn err_at(pos: &Pos, msg: impl Into<String>) -> ConfError {
    ConfError {
        pos: Some(pos.clone()),
        msg: msg.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    /// End of a line.
    Eol,
}

/// One statement: `key args… [{ children }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword.
    pub key: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its block, if it has one.
    pub block: Option<Vec<Node>>,
    /// Where the keyword is.
    pub pos: Pos,
}

/// Split one line into tokens.
fn lex_line(text: &str, pos: &Pos, out: &mut Vec<(Tok, Pos)>) -> Result<(), ConfError> {
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<(Tok, Pos)>| {
        if !word.is_empty() {
            out.push((Tok::Word(std::mem::take(word)), pos.clone()));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if word.is_empty() => {
                let mut s = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    s.push(c);
                }
                if !closed {
                    return Err(err_at(pos, "unterminated quoted string"));
                }
                out.push((Tok::Word(s), pos.clone()));
            }
            '#' | '!' if word.is_empty() => break,
            '{' => {
                flush(&mut word, out);
                out.push((Tok::Open, pos.clone()));
            }
            '}' => {
                flush(&mut word, out);
                out.push((Tok::Close, pos.clone()));
            }
            c if c.is_whitespace() => flush(&mut word, out),
            c => word.push(c),
        }
    }
    flush(&mut word, out);
    out.push((Tok::Eol, pos.clone()));
    Ok(())
}

/// Match one path component against a glob pattern (`*`, `?`, `[…]`).
fn glob_match(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|i| glob_match(&pat[1..], &name[i..])),
        Some('?') => !name.is_empty() && glob_match(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(end) = pat.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                return name.first() == Some(&'[') && glob_match(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut set = &pat[1..end];
            let negate = matches!(set.first(), Some('!') | Some('^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(&pat[end + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && glob_match(&pat[1..], &name[1..]),
    }
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files a glob names, sorted (as glob(3) returns them). Hidden files
/// match only a pattern that starts with a dot.
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &found {
            if !has_magic(&part) {
                let p = base.join(&part);
                if p.exists() || matches!(comp, std::path::Component::RootDir) {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let pat: Vec<char> = part.chars().collect();
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| glob_match(&pat, &n.chars().collect::<Vec<_>>()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// Tokens of `file` and of everything it includes, in order.
fn lex_file(
    file: &Path,
    name: &str,
    depth: usize,
    out: &mut Vec<(Tok, Pos)>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfError {
        pos: None,
        msg: format!("cannot read {name}: {e}"),
    })?;
    lex_text(&text, file, name, depth, out, warnings)
}

fn lex_text(
    text: &str,
    file: &Path,
    name: &str,
    depth: usize,
    out: &mut Vec<(Tok, Pos)>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfError> {
    for (i, line) in text.lines().enumerate() {
        let pos = Pos {
            file: name.to_string(),
            line: i + 1,
        };
        let start = out.len();
        lex_line(line, &pos, out)?;
        // `include PATTERN` on a line of its own is replaced by the files.
        if let [(Tok::Word(k), _), (Tok::Word(pat), _), (Tok::Eol, _)] = &out[start..]
            && k == "include"
        {
            let pat = pat.clone();
            out.truncate(start);
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(err_at(&pos, "includes nested too deep (a loop?)"));
            }
            let path = Path::new(&pat);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                file.parent().unwrap_or(Path::new(".")).join(path)
            };
            let files = glob(&path);
            if files.is_empty() {
                warnings.push(format!("{pos}: include {pat}: no file matches"));
            }
            for f in files {
                let fname = f.display().to_string();
                lex_file(&f, &fname, depth + 1, out, warnings)?;
            }
        } else if matches!(out.get(start), Some((Tok::Word(k), _)) if k == "include") {
            return Err(err_at(&pos, "include needs exactly one file or pattern"));
        }
    }
    Ok(())
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(Tok, Pos)> {
        self.toks.get(self.at)
    }

    /// Statements until a `}` (nested) or the end (top).
    fn block(&mut self, open: Option<&Pos>) -> Result<Vec<Node>, ConfError> {
        let mut nodes = Vec::new();
        loop {
            let Some((tok, pos)) = self.peek().cloned() else {
                return match open {
                    Some(p) => Err(err_at(p, "'{' is never closed")),
                    None => Ok(nodes),
                };
            };
            self.at += 1;
            match tok {
                Tok::Eol => {}
                Tok::Close => {
                    return match open {
                        Some(_) => Ok(nodes),
                        None => Err(err_at(&pos, "'}' without a matching '{'")),
                    };
                }
                Tok::Open => return Err(err_at(&pos, "'{' without a keyword before it")),
                Tok::Word(key) => {
                    let mut args = Vec::new();
                    let mut block = None;
                    loop {
                        match self.peek().cloned() {
                            Some((Tok::Word(w), _)) => {
                                args.push(w);
                                self.at += 1;
                            }
                            Some((Tok::Open, p)) => {
                                self.at += 1;
                                block = Some(self.block(Some(&p))?);
                                break;
                            }
                            Some((Tok::Eol, _)) => {
                                // `{` alone on the next non-empty line.
                                let mut j = self.at;
                                while matches!(self.toks.get(j), Some((Tok::Eol, _))) {
                                    j += 1;
                                }
                                if let Some((Tok::Open, p)) = self.toks.get(j).cloned() {
                                    self.at = j + 1;
                                    block = Some(self.block(Some(&p))?);
                                }
                                break;
                            }
                            Some((Tok::Close, _)) | None => break,
                        }
                    }
                    nodes.push(Node {
                        key,
                        args,
                        block,
                        pos,
                    });
                }
            }
        }
    }
}

/// Read `path` (and its includes) into statements; warnings (includes that
/// match nothing) go to `warnings`.
pub fn parse_file(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<Node>, ConfError> {
    let mut toks = Vec::new();
    lex_file(path, &path.display().to_string(), 0, &mut toks, warnings)?;
    Parser { toks, at: 0 }.block(None)
}

/// [`parse_file`] of text already read, named `name`, includes relative to
/// `dir`.
#[cfg(test)]
pub fn parse_text(
    text: &str,
    name: &str,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Node>, ConfError> {
    let mut toks = Vec::new();
    lex_text(text, &dir.join(name), name, 0, &mut toks, warnings)?;
    Parser { toks, at: 0 }.block(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Result<Vec<Node>, ConfError> {
        parse_text(text, "k.conf", Path::new("/nonexistent"), &mut Vec::new())
    }

    #[test]
    fn comments_quotes_and_braces() {
        let t = tree(
            "! a comment\n# another\nvirtual_server 10.0.0.1 80 { # trailing\n  lb_algo rr ! x\n  \
             real_server 10.0.0.2 80\n  {\n    MISC_CHECK { misc_path \"/bin/x a b\" }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "virtual_server");
        assert_eq!(t[0].args, ["10.0.0.1", "80"]);
        assert_eq!(t[0].pos.line, 3);
        let b = t[0].block.as_ref().unwrap();
        assert_eq!(b[0].key, "lb_algo");
        assert_eq!(b[0].args, ["rr"]);
        let rs = &b[1];
        assert_eq!(rs.key, "real_server");
        let misc = &rs.block.as_ref().unwrap()[0];
        assert_eq!(misc.block.as_ref().unwrap()[0].args, ["/bin/x a b"]);
    }

    #[test]
    fn unbalanced_braces_are_errors_with_line() {
        let e = tree("a {\n b 1\n").unwrap_err();
        assert_eq!(e.to_string(), "k.conf:1: '{' is never closed");
        let e = tree("a 1\n}\n").unwrap_err();
        assert_eq!(e.to_string(), "k.conf:2: '}' without a matching '{'");
        let e = tree("a \"x\n").unwrap_err();
        assert_eq!(e.to_string(), "k.conf:1: unterminated quoted string");
    }

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.conf", "a.conf"));
        assert!(!m("*.conf", "a.confx"));
        assert!(m("rs?.conf", "rs1.conf"));
        assert!(m("rs[0-9].conf", "rs7.conf"));
        assert!(!m("rs[!0-9].conf", "rs7.conf"));
    }

    #[test]
    fn include_with_glob_relative_to_the_including_file() {
        let dir = std::env::temp_dir().join(format!("rvs-ka-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d/sub")).unwrap();
        std::fs::write(dir.join("main.conf"), "include conf.d/*.conf\nlast 1\n").unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b 2\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1\ninclude sub/x*\n").unwrap();
        std::fs::write(dir.join("conf.d/sub/x1"), "x {\n}\n").unwrap();
        std::fs::write(dir.join("conf.d/ignored.txt"), "nope\n").unwrap();
        let mut w = Vec::new();
        let t = parse_file(&dir.join("main.conf"), &mut w).unwrap();
        let keys: Vec<_> = t.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["a", "x", "b", "last"]);
        assert!(t[1].pos.file.ends_with("conf.d/sub/x1"), "{:?}", t[1].pos);
        assert_eq!(t[3].pos.line, 2);
        assert!(w.is_empty(), "{w:?}");
        std::fs::write(dir.join("main.conf"), "include none/*.conf\n").unwrap();
        parse_file(&dir.join("main.conf"), &mut w).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("main.conf:1: include none/*.conf: no file matches"));
        // An include loop stops.
        std::fs::write(dir.join("main.conf"), "include main.conf\n").unwrap();
        let e = parse_file(&dir.join("main.conf"), &mut w).unwrap_err();
        assert!(e.msg.contains("nested too deep"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
