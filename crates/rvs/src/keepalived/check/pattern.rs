// SPDX-License-Identifier: GPL-2.0-or-later
//! A url's `regex` as keepalived matches it with PCRE2: [`build`] compiles
//! the pattern with the `regex_options` rvs applies, [`matches`] says
//! whether the body matches, with PCRE2's defaults where the engines
//! differ and the `regex_min_offset` / `regex_max_offset` window. Pure: no
//! I/O.
//!
//! Two engines: the regex crate's automata (linear time) for every
//! pattern they can run, and fancy-regex's backtracking VM for what PCRE
//! has beyond them (look-ahead and look-behind, back-references, atomic
//! groups, possessive quantifiers, `\K`). A backtracking match that takes
//! more than a million steps (PCRE2 stops at ten million) is no match, as
//! PCRE2's match limit is a failed match.
//!
//! Where PCRE2 and these engines differ by default, PCRE2 wins:
//! * one byte is one character and `\w`, `\d`, `\b` and caseless matching
//!   are ASCII unless `utf` or `ucp` is given (a pattern that needs
//!   Unicode to compile, `\p{L}`, gets it);
//! * `$` (without `multiline` or `dollar_endonly`) matches at the end and
//!   also before a newline that ends the body: `^OK$` matches `OK\n`.
//!
//! keepalived matches the body as it arrives, in pieces, with PCRE2's
//! partial matching; rvs matches the body read (up to 4 MiB) at the end.
//! The verdict is the same.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::keepalived::conf::RegexOptions;

/// A compiled `regex`.
#[derive(Debug, Clone)]
pub(crate) enum Regex {
    /// The regex crate's: what it can run.
    Automaton(regex::bytes::Regex),
    /// fancy-regex's: PCRE's constructs beyond it.
    Backtracking(fancy_regex::Regex),
}

impl Regex {
    /// Where the first match at or after `start` begins; a backtracking
    /// match that gives up is none.
    pub(crate) fn find_at(&self, s: &[u8], start: usize) -> Option<usize> {
        match self {
            Regex::Automaton(re) => re.find_at(s, start).map(|m| m.start()),
            Regex::Backtracking(re) => re.find_from_pos(s, start).ok().flatten().map(|m| m.start()),
        }
    }

    /// Whether `s` has a match.
    #[cfg(test)]
    pub(crate) fn is_match(&self, s: &[u8]) -> bool {
        self.find_at(s, 0).is_some()
    }
}

/// `pattern` compiled with the options of `o` that shape the automaton
/// (the offsets, `firstline` and `dollar_endonly` act in [`matches`]).
pub(crate) fn build(pattern: &str, o: &RegexOptions) -> Result<Regex, String> {
    let translated = translate(pattern, o);
    let pattern = translated.as_str();
    let automaton = |unicode: bool| {
        regex::bytes::RegexBuilder::new(pattern)
            .case_insensitive(o.caseless)
            .multi_line(o.multiline)
            .dot_matches_new_line(o.dotall)
            .ignore_whitespace(o.extended)
            .swap_greed(o.ungreedy)
            .unicode(unicode)
            .build()
    };
    let first = if o.unicode {
        automaton(true)
    } else {
        automaton(false).or_else(|e| automaton(true).map_err(|_| e))
    };
    let e = match first {
        // The regex crate reads `a++` as a repetition repeated, PCRE as
        // possessive.
        Ok(re) if !possessive(pattern) => return Ok(Regex::Automaton(re)),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    // fancy-regex has no builder switch for greed: the inline flag.
    let p = if o.ungreedy {
        format!("(?U){pattern}")
    } else {
        pattern.to_string()
    };
    let backtracking = |unicode: bool| {
        fancy_regex::RegexBuilder::new(&p)
            .case_insensitive(o.caseless)
            .multi_line(o.multiline)
            .dot_matches_new_line(o.dotall)
            .ignore_whitespace(o.extended)
            .bytes_mode(if unicode {
                fancy_regex::BytesMode::Unicode
            } else {
                fancy_regex::BytesMode::Ascii
            })
            .build()
    };
    let second = if o.unicode {
        backtracking(true)
    } else {
        backtracking(false).or_else(|_| backtracking(true))
    };
    // Neither: the regex crate's message (it names what is wrong).
    second
        .map(Regex::Backtracking)
        .map_err(|f| e.unwrap_or_else(|| f.to_string()))
}

/// `pattern` with the syntax options the engines lack rewritten into
/// what they take: `alt_bsux` (`\U` is `U`; `\uhhhh` is that character,
/// a `\u` without four hex digits is `u`; `\x` takes exactly two hex
/// digits, else it is `x`), `allow_empty_class` (`[]` is `(?!)`,
/// nothing; `[^]` is `(?s:.)`, any character) and `match_unset_backref`
/// (`\1` is `(?(1)\1|)`: empty when group 1 did not take part). Escapes and classes are
/// skipped whole, so only the constructs themselves change.
fn translate(pattern: &str, o: &RegexOptions) -> String {
    if !o.alt_bsux && !o.allow_empty_class && !o.match_unset_backref {
        return pattern.to_string();
    }
    let c: Vec<char> = pattern.chars().collect();
    let hex = |from: usize, n: usize| -> bool {
        c.len() >= from + n && c[from..from + n].iter().all(char::is_ascii_hexdigit)
    };
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    let mut class = false;
    while i < c.len() {
        match c[i] {
            '\\' if i + 1 < c.len() => {
                let e = c[i + 1];
                match e {
                    'U' if o.alt_bsux => out.push('U'),
                    'u' if o.alt_bsux && hex(i + 2, 4) => {
                        out.push_str("\\x{");
                        out.extend(&c[i + 2..i + 6]);
                        out.push('}');
                        i += 4;
                    }
                    'u' if o.alt_bsux => out.push('u'),
                    'x' if o.alt_bsux && hex(i + 2, 2) => {
                        out.push_str("\\x");
                        out.extend(&c[i + 2..i + 4]);
                        i += 2;
                    }
                    'x' if o.alt_bsux => out.push('x'),
                    // `\N` (one digit: PCRE reads more as octal unless
                    // there are that many groups) made conditional on its
                    // group: empty when the group did not take part.
                    '1'..='9'
                        if o.match_unset_backref
                            && !class
                            && !c.get(i + 2).is_some_and(char::is_ascii_digit) =>
                    {
                        out.push_str(&format!("(?({e})\\{e}|)"));
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
                i += 2;
                continue;
            }
            '[' if !class => {
                let neg = c.get(i + 1) == Some(&'^');
                let first = i + 1 + usize::from(neg);
                if o.allow_empty_class && c.get(first) == Some(&']') {
                    out.push_str(if neg { "(?s:.)" } else { "(?!)" });
                    i = first + 1;
                    continue;
                }
                class = true;
                out.push('[');
                if neg {
                    out.push('^');
                }
                i = first;
                // A `]` first is a member.
                if c.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            ']' if class => class = false,
            _ => {}
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Whether `pattern` has a possessive quantifier (`a++`, `a*+`, `a?+`,
/// `a{2}+`), outside escapes and character classes.
fn possessive(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !class => {
                class = true;
                // A `]` first (or after `^`) is a member.
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if class => class = false,
            // Not `(?+1)`, a relative group reference.
            b'+' | b'*' | b'?' | b'}'
                if !class
                    && b.get(i + 1) == Some(&b'+')
                    && !(b[i] == b'?' && i > 0 && b[i - 1] == b'(') =>
            {
                return true;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Whether `body` matches `re` (built by [`build`] with `o`) as PCRE2
/// matches it: a match that starts within `o`'s offsets (and, with
/// `firstline`, on the first line).
pub(crate) fn matches(re: &Regex, pattern: &str, o: &RegexOptions, body: &[u8]) -> bool {
    let within = |s: &[u8]| {
        let mut last = o.max_offset.unwrap_or(usize::MAX);
        if o.firstline
            && let Some(nl) = s.iter().position(|&b| b == b'\n')
        {
            last = last.min(nl);
        }
        o.min_offset <= s.len() && re.find_at(s, o.min_offset).is_some_and(|m| m <= last)
    };
    if within(body) {
        return true;
    }
    // PCRE2's `$` also matches before a newline that ends the subject: the
    // same match against the body without that newline.
    !o.dollar_endonly
        && !o.multiline
        && pattern.contains('$')
        && body.last() == Some(&b'\n')
        && within(&body[..body.len() - 1])
}

/// Patterns compiled by [`compiled`], on the thread that judges.
const COMPILED_KEPT: usize = 256;

thread_local! {
    static COMPILED: RefCell<HashMap<(String, RegexOptions), Rc<Regex>>> =
        RefCell::new(HashMap::new());
}

/// `pattern` with `o` compiled once per thread, not at every check: the
/// patterns come from the configuration (checked when it is read), so a
/// handful; a reload that brings new ones past [`COMPILED_KEPT`] starts
/// afresh.
pub(super) fn compiled(pattern: &str, o: &RegexOptions) -> Result<Rc<Regex>, String> {
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        let key = (pattern.to_string(), *o);
        if let Some(re) = c.get(&key) {
            return Ok(Rc::clone(re));
        }
        let re = Rc::new(build(pattern, o).map_err(|e| format!("regex {pattern}: {e}"))?);
        if c.len() >= COMPILED_KEPT {
            c.clear();
        }
        c.insert(key, Rc::clone(&re));
        Ok(re)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, o: RegexOptions, body: &str) -> bool {
        matches(&build(pattern, &o).unwrap(), pattern, &o, body.as_bytes())
    }

    fn opts(f: impl FnOnce(&mut RegexOptions)) -> RegexOptions {
        let mut o = RegexOptions::default();
        f(&mut o);
        o
    }

    #[test]
    fn dollar_matches_before_a_final_newline_as_pcre2s() {
        let d = RegexOptions::default();
        assert!(m("^OK$", d, "OK\n"));
        assert!(m("^OK$", d, "OK"));
        assert!(!m("^OK$", d, "OK\n\n"));
        assert!(!m("^OK$", opts(|o| o.dollar_endonly = true), "OK\n"));
        // A pattern without `$` is matched once, as it is.
        assert!(!m(r"OK\z", d, "OK\n"));
        assert!(m("OK\n", d, "OK\n"));
    }

    #[test]
    fn options_change_what_matches() {
        let d = RegexOptions::default();
        assert!(!m("status: up", d, "Status: UP"));
        assert!(m("status: up", opts(|o| o.caseless = true), "Status: UP"));
        assert!(!m("^up$", d, "a\nup\nb"));
        assert!(m("^up$", opts(|o| o.multiline = true), "a\nup\nb"));
        assert!(!m("a.b", d, "a\nb"));
        assert!(m("a.b", opts(|o| o.dotall = true), "a\nb"));
        assert!(m("u p  # a comment", opts(|o| o.extended = true), "up"));
        let ungreedy = build("<.+>", &opts(|o| o.ungreedy = true)).unwrap();
        let Regex::Automaton(ungreedy) = ungreedy else {
            panic!("the regex crate runs it")
        };
        assert_eq!(ungreedy.find(b"<a><b>").unwrap().as_bytes(), b"<a>");
    }

    #[test]
    fn one_byte_is_one_character_unless_utf() {
        let d = RegexOptions::default();
        // "é" is two bytes: two `.` without utf, one with it.
        assert!(m("^x..y$", d, "xéy"));
        assert!(!m("^x.y$", d, "xéy"));
        assert!(m("^x.y$", opts(|o| o.unicode = true), "xéy"));
        // `\w` is ASCII without utf or ucp.
        assert!(!m(r"^\w+$", d, "é"));
        assert!(m(r"^\w+$", opts(|o| o.unicode = true), "é"));
        // A literal beyond ASCII matches its UTF-8 bytes either way.
        assert!(m("café", d, "un café"));
        // A pattern that needs Unicode gets it.
        assert!(m(r"^\p{L}+$", d, "été"));
        assert!(build("(", &d).is_err());
    }

    #[test]
    fn the_match_starts_within_the_offsets() {
        let body = "OK..........OK";
        let o = |min, max| {
            opts(|o| {
                o.min_offset = min;
                o.max_offset = max;
            })
        };
        assert!(m("OK", o(0, None), body));
        assert!(m("OK", o(1, None), body), "the second OK, at 12");
        assert!(!m("OK", o(13, None), body));
        assert!(m("OK", o(1, Some(12)), body));
        assert!(!m("OK", o(1, Some(11)), body));
        assert!(m("OK", o(0, Some(0)), body));
        // Past the end of the body: no match.
        assert!(!m("", o(100, None), body));
        // Text before the window still counts for `^` and `\b`.
        assert!(!m(r"\bOK", o(13, None), "xOK"));
        assert!(!m("^K", o(1, None), "OK"));
    }

    #[test]
    fn firstline_keeps_the_start_on_the_first_line() {
        let o = opts(|o| o.firstline = true);
        assert!(m("b", o, "ab\nb"));
        assert!(!m("c", o, "ab\nc"));
        // The match may run past the first line.
        assert!(m("b\nc", o, "ab\nc"));
        assert!(m("c", RegexOptions::default(), "ab\nc"));
    }

    /// What PCRE2 has beyond the regex crate, as keepalived.conf files
    /// use it: look-ahead and look-behind, back-references, atomic groups,
    /// possessive quantifiers, `\K`; on bytes, one byte per character.
    #[test]
    fn pcre_constructs_beyond_the_regex_crate() {
        let d = RegexOptions::default();
        assert!(m(r#""status":\s*"(?!down)"#, d, r#"{"status": "up"}"#));
        assert!(!m(r#""status":\s*"(?!down)"#, d, r#"{"status": "down"}"#));
        assert!(m(r"(?<=ver=)2\.", d, "ver=2.1"));
        assert!(!m(r"(?<=ver=)2\.", d, "rev=2.1"));
        assert!(m(r"<(\w+)>.*</\1>", d, "<b>x</b>"));
        assert!(!m(r"<(\w+)>.*</\1>", d, "<b>x</i>"));
        assert!(
            !m(r"^(?>a+)ab", d, "aaab"),
            "atomic: no backtracking into it"
        );
        assert!(!m(r"^a++ab", d, "aaab"), "possessive");
        assert!(m(r"^a+ab", d, "aaab"));
        assert!(m(r"foo\Kbar", d, "foobar"));
        // Bytes that are not UTF-8, one character each.
        let re = build(r"^OK(?=.\xff)", &d).unwrap();
        assert!(matches(&re, "", &d, b"OK\x80\xff"));
        // A back-reference with the offsets and `$` before a final newline.
        let o = opts(|o| o.min_offset = 2);
        assert!(m(r"(a)\1$", o, "xxaa\n"));
        assert!(!m(r"(a)\1$", o, "aax\n"));
        assert!(!possessive(r"a\++[+]+(a+)"));
        assert!(possessive("x{2}+") && possessive("[]]*+"));
        // The automata run what they can; the VM the rest.
        assert!(matches!(build("^ok$", &d).unwrap(), Regex::Automaton(_)));
        assert!(matches!(
            build("a(?=b)", &d).unwrap(),
            Regex::Backtracking(_)
        ));
        // Catastrophic backtracking is bounded: no match, not a hang.
        let body = format!("{}!", "a".repeat(64));
        assert!(!m(r"^(a|aa)+(?=b)", d, &body));
    }

    #[test]
    fn alt_bsux_and_allow_empty_class() {
        let bsux = opts(|o| o.alt_bsux = true);
        assert!(m(r"^\u0041\x42C$", bsux, "ABC"));
        assert!(m(r"^\U\u12\xz$", bsux, "Uu12xz"));
        assert!(m(r"^[\u0041]$", bsux, "A"));
        assert!(!m(r"\u0041", RegexOptions::default(), "u0041"));
        let empty = opts(|o| o.allow_empty_class = true);
        assert!(!m("a[]b", empty, "ab"), "[] matches nothing");
        assert!(m("a[^]b", empty, "a\nb"), "[^] matches any character");
        // Without it a `]` first is a member.
        assert!(m("a[]b]c", RegexOptions::default(), "a]c"));
        assert!(m("a[^]b]c", RegexOptions::default(), "axc"));
        assert_eq!(translate(r"[\]x][]", &empty), r"[\]x](?!)");
        let unset = opts(|o| o.match_unset_backref = true);
        assert!(m(r"^(a)?\1b$", unset, "b"), "group 1 unset: \\1 is empty");
        assert!(m(r"^(a)?\1b$", unset, "aab"));
        assert!(!m(r"^(a)?\1b$", unset, "ab"));
        assert!(!m(r"^(a)?\1b$", RegexOptions::default(), "b"));
        assert_eq!(translate(r"[\1]\12", &unset), r"[\1]\12");
    }

    #[test]
    fn patterns_are_compiled_once_per_thread_and_bounded() {
        let d = RegexOptions::default();
        assert!(compiled("^ok$", &d).unwrap().is_match(b"ok"));
        let key = ("^ok$".to_string(), d);
        COMPILED.with(|c| assert!(c.borrow().contains_key(&key)));
        // The same pattern with other options is another program.
        let caseless = opts(|o| o.caseless = true);
        assert!(compiled("^ok$", &caseless).unwrap().is_match(b"OK"));
        assert!(!compiled("^ok$", &d).unwrap().is_match(b"OK"));
        assert!(compiled("(", &d).is_err(), "an invalid pattern is an error");
        for i in 0..=COMPILED_KEPT {
            compiled(&format!("x{i}"), &d).unwrap();
        }
        COMPILED.with(|c| assert!(c.borrow().len() <= COMPILED_KEPT));
    }
}
