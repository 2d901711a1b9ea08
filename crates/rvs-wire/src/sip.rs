//! The SIP Call-ID, as IPVS's SIP persistence engine (`--pe sip`,
//! `ip_vs_pe_sip.c`) finds it in a UDP datagram: the key of a persistence
//! template, so that the messages of one call stick to one real server
//! while the calls of one client (a SIP proxy, say) are spread.
//!
//! The search is the kernel's, quirks included, so that rvs keys the same
//! datagrams the same way (`ct_sip_get_header` of `nf_conntrack_sip.c` with
//! its `callid_len`, and `get_callid`):
//!
//! * the search starts `skip` bytes into the payload, where `skip` is the
//!   IP header's length plus the UDP header's (the kernel passes the
//!   payload's offset in the packet as the offset into the payload); a
//!   header is only found at the start of a line, so the request line is
//!   skipped anyway;
//! * the header is `Call-ID` (any case) or its compact form `i` followed by
//!   a non-letter, then optional spaces and continuation lines, a colon,
//!   the same again, and the value: a word (letters, digits and
//!   `!"%()*+,-./:<>?[\]_`{}~`), optionally `@` and another word;
//! * a header name not followed by its colon ends the search (no Call-ID);
//!   an empty value resumes it further on (at the value's offset counted
//!   twice, as the kernel's `dataoff += matchoff` does);
//! * a continuation line's first character is skipped, as the kernel's
//!   loop does after following one;
//! * the value must be at most [`CALL_ID_MAX`] bytes and be followed by CR
//!   or LF;
//! * letters are the kernel's `isalpha`: ASCII and the Latin-1 letters
//!   (`lib/ctype.c`).
//!
//! Pure and allocation-free; [`call_id`] never reads outside `payload`
//! (where the kernel would read one byte past a value that ends the
//! datagram, this finds no colon, or no value).

/// The longest persistence-engine data IPVS keeps (`IP_VS_PEDATA_MAXLEN`).
pub const CALL_ID_MAX: usize = 255;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// The Call-ID of the SIP message in `payload` (a UDP datagram's data),
/// searched from `skip` bytes in (see the module docs), or `None` where the
/// kernel finds none (then IPVS falls back to the client-address
/// persistence).
pub fn call_id(payload: &[u8], skip: usize) -> Option<&[u8]> {
    if payload.is_empty() {
        return None;
    }
    let mut from = skip;
    let (off, len) = loop {
        match header(payload, from) {
            Header::Found { off, len } => break (off, len),
            Header::Absent => return None,
            Header::Empty { off } => from = from.checked_add(off)?,
        }
    };
    if len > CALL_ID_MAX || off + len == payload.len() {
        return None;
    }
    match payload.get(off + len) {
        Some(&CR | &LF) => payload.get(off..off + len),
        _ => None,
    }
}

enum Header {
    /// The value at `off`, `len` bytes.
    Found {
        off: usize,
        len: usize,
    },
    /// A Call-ID header whose value starts at `off` is empty.
    Empty {
        off: usize,
    },
    Absent,
}

/// `ct_sip_get_header(…, SIP_HDR_CALL_ID, …)`.
fn header(b: &[u8], from: usize) -> Header {
    const NAME: &[u8] = b"Call-Id";
    let limit = b.len();
    let mut p = from;
    // Each `continue` of the kernel's loop steps one byte further, as its
    // `for (…; dptr++)` does.
    while p < limit {
        if b[p] != CR && b[p] != LF {
            p += 1;
            continue;
        }
        p += 1;
        if p >= limit {
            break;
        }
        if b[p - 1] == CR && b[p] == LF {
            p += 1;
            if p >= limit {
                break;
            }
        }
        if b[p] == b' ' || b[p] == b'\t' {
            p += 1;
            continue;
        }
        if limit - p >= NAME.len() && b[p..p + NAME.len()].eq_ignore_ascii_case(NAME) {
            p += NAME.len();
        } else if limit - p >= 2 && b[p].eq_ignore_ascii_case(&b'i') && !is_alpha(b[p + 1]) {
            p += 1;
        } else {
            p += 1;
            continue;
        }
        // The colon, with whitespace either side.
        let Some(q) = skip_whitespace(b, p) else {
            break;
        };
        if b.get(q) != Some(&b':') || q + 1 >= limit {
            break;
        }
        let Some(q) = skip_whitespace(b, q + 1) else {
            break;
        };
        let len = callid_len(b, q);
        if len == 0 {
            return Header::Empty { off: q };
        }
        return Header::Found { off: q, len };
    }
    Header::Absent
}

/// `sip_skip_whitespace`: spaces and continuation lines (a line break
/// followed by spaces or tabs); `None` at a line break that does not
/// continue. May return `b.len()`.
fn skip_whitespace(b: &[u8], mut p: usize) -> Option<usize> {
    while p < b.len() {
        if b[p] == b' ' {
            p += 1;
            continue;
        }
        if b[p] != CR && b[p] != LF {
            return Some(p);
        }
        // The kernel's loop steps past the continuation's first character.
        p = follow_continuation(b, p)? + 1;
    }
    Some(p)
}

/// `sip_follow_continuation`: past the line break at `p` and the next
/// line's leading spaces and tabs, if it starts with one; else `None`.
fn follow_continuation(b: &[u8], mut p: usize) -> Option<usize> {
    let limit = b.len();
    p += 1;
    if p >= limit {
        return None;
    }
    if b[p - 1] == CR && b[p] == LF {
        p += 1;
        if p >= limit {
            return None;
        }
    }
    if b[p] != b' ' && b[p] != b'\t' {
        return None;
    }
    while p < limit && (b[p] == b' ' || b[p] == b'\t') {
        p += 1;
    }
    Some(p)
}

/// `callid_len`: a word, optionally `@` and a second (non-empty) word.
fn callid_len(b: &[u8], p: usize) -> usize {
    let len = word_len(b, p);
    let at = p + len;
    if len == 0 || at >= b.len() || b[at] != b'@' {
        return len;
    }
    match word_len(b, at + 1) {
        0 => 0,
        domain => len + 1 + domain,
    }
}

fn word_len(b: &[u8], p: usize) -> usize {
    b.get(p..)
        .map_or(0, |rest| rest.iter().take_while(|&&c| is_word(c)).count())
}

/// The kernel's `iswordc`.
fn is_word(c: u8) -> bool {
    is_alpha(c)
        || c.is_ascii_digit()
        || matches!(
            c,
            b'!' | b'"'
                | b'%'
                | b'('..=b'/'
                | b':'
                | b'<'
                | b'>'
                | b'?'
                | b'['..=b']'
                | b'_'
                | b'`'
                | b'{'
                | b'}'
                | b'~'
        )
}

/// The kernel's `isalpha` (`lib/ctype.c`): ASCII letters and Latin-1's.
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, 0xc0..=0xd6 | 0xd8..=0xf6 | 0xf8..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UDP payload offset of a plain IPv4 packet: where the kernel's
    /// search starts.
    const SKIP4: usize = 28;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn finds_the_call_id_of_rfc_3261s_invite() {
        assert_eq!(
            call_id(INVITE, SKIP4),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
    }

    #[test]
    fn compact_form_any_case_and_whitespace() {
        for (msg, want) in [
            (
                &b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\ni: abc-123\r\n\r\n"[..],
                "abc-123",
            ),
            (
                b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nI:abc\r\n",
                "abc",
            ),
            (
                b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCALL-id  :  x@y\r\n",
                "x@y",
            ),
            // LF alone ends lines too (RFC 2543).
            (
                b"OPTIONS sip:carol@chicago.example.com SIP/2.0\ncall-id: q\n",
                "q",
            ),
            // The value continued on the next line (its first character is
            // skipped, as the kernel does).
            (
                b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID:\r\n  Xabc\r\n",
                "abc",
            ),
        ] {
            assert_eq!(call_id(msg, SKIP4), Some(want.as_bytes()), "{msg:?}");
        }
    }

    #[test]
    fn what_the_kernel_does_not_key() {
        for msg in [
            // No Call-ID.
            &b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"[..],
            // The value ends the datagram (no line terminator).
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: abc",
            // A compact name followed by a letter is another header; one
            // followed by no colon ends the search.
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nin: abc\r\n",
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\ni-x: abc\r\nCall-ID: d\r\n",
            // A tab before the colon is not whitespace to the kernel.
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID\t: abc\r\n",
            // `@` without a domain.
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: abc@\r\n",
            // A value followed by something else than a line break.
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: abc;x\r\n",
            b"",
        ] {
            assert_eq!(call_id(msg, SKIP4), None, "{msg:?}");
        }
    }

    /// The kernel searches from the payload's offset in the packet: a
    /// Call-ID on a line that starts before it is not seen, one after a
    /// longer request line is.
    #[test]
    fn the_search_starts_at_the_header_length() {
        let short = b"X sip:a SIP/2.0\r\nCall-ID: early\r\n";
        assert_eq!(call_id(short, SKIP4), None);
        assert_eq!(call_id(short, 0), Some(&b"early"[..]));
        // IPv6: 48 bytes in.
        assert_eq!(call_id(INVITE, 48), call_id(INVITE, SKIP4));
    }

    /// An empty value resumes the search at its offset counted twice.
    #[test]
    fn an_empty_value_skips_ahead() {
        let mut msg = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: ;\r\n".to_vec();
        let resume = SKIP4 + msg.len() - 3;
        msg.resize(resume, b'z');
        msg.extend_from_slice(b"\r\nCall-ID: late\r\n");
        assert_eq!(call_id(&msg, SKIP4), Some(&b"late"[..]));
        // A second Call-ID before that offset is skipped over.
        let mut early = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: ;\r\n".to_vec();
        early.extend_from_slice(b"Call-ID: skipped\r\n");
        assert_eq!(call_id(&early, SKIP4), None);
    }

    #[test]
    fn values_up_to_255_bytes() {
        let head = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: ";
        for (n, found) in [(255, true), (256, false)] {
            let mut msg = head.to_vec();
            msg.extend(std::iter::repeat_n(b'a', n));
            msg.extend_from_slice(b"\r\n");
            assert_eq!(call_id(&msg, SKIP4).is_some(), found, "{n}");
        }
    }

    #[test]
    fn latin_1_letters_are_word_characters() {
        let msg = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: a\xe9b\xd7\r\n";
        // 0xd7 (the multiplication sign) is not a letter: the value stops
        // before it and is not followed by a line break.
        assert_eq!(call_id(msg, SKIP4), None);
        let msg = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nCall-ID: a\xe9b\r\n";
        assert_eq!(call_id(msg, SKIP4), Some(&b"a\xe9b"[..]));
    }

    #[test]
    fn never_reads_outside() {
        // Every prefix of a message, from every start.
        for end in 0..INVITE.len() {
            for skip in [0, 1, SKIP4, end, end + 1, usize::MAX] {
                let _ = call_id(&INVITE[..end], skip);
            }
        }
    }
}
