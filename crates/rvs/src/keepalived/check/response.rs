// SPDX-License-Identifier: GPL-2.0-or-later
//! The response to an HTTP_GET or SSL_GET url, judged as it comes: a
//! state machine without I/O ([`Response`]) that `http.rs` feeds with
//! what it reads and asks for the verdict when the server closes (or
//! [`MAX_RESPONSE`] bytes are read).
//!
//! It buffers the head alone (until its blank line), then streams the
//! body: through [`Chunks`] when it is chunked, into an MD5 computed as
//! it arrives when the url has a `digest` (as keepalived does, which does
//! not keep the body either). The body is kept only when the url has a
//! `regex` (the regex crate matches one whole text, not pieces); without
//! `regex` and `digest` it is read and dropped. The decisions, their
//! order and their lines are keepalived's: the status among the url's
//! codes, then the regex, then the digest. A status not accepted (or a
//! malformed chunked body) is the verdict whatever follows, so the
//! reading stops there ([`Fed::Enough`]) rather than at the server's
//! close.

use md5::{Digest, Md5};

use super::MAX_RESPONSE;
use super::pattern::{compiled, matches};
use crate::keepalived::conf::Url;

/// Whether to read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fed {
    More,
    /// Stop reading: [`MAX_RESPONSE`] bytes are read, or the verdict is
    /// known whatever follows (a status not accepted, a malformed chunked
    /// body). [`Response::finish`] gives it.
    Enough,
}

/// The response to the GET of one url, as far as it is read.
pub(super) struct Response {
    /// The head so far, until its blank line; then nothing.
    head: Vec<u8>,
    stage: Stage,
    /// Bytes fed so far, head and body.
    read: usize,
    /// With `digest`: the MD5 of the body so far (decoded, if chunked).
    md5: Option<Md5>,
    /// With `regex`: the body so far (decoded, if chunked), matched at
    /// the end since the regex crate cannot match across pieces. Bounded
    /// as the bytes read are, by [`MAX_RESPONSE`] (and one read), as when
    /// the whole response was kept.
    body: Option<Vec<u8>>,
}

/// Where the response is.
enum Stage {
    /// In the head.
    Head,
    /// The head is complete and its status line malformed (`None`) or
    /// its status not accepted: the verdict, whatever follows.
    BadStatus(Option<u16>),
    /// In a body as it is.
    Plain,
    /// In a chunked body.
    Chunked(Chunks),
}

impl Response {
    /// Before the response to the GET of `u`.
    pub(super) fn new(u: &Url) -> Response {
        Response {
            head: Vec::new(),
            stage: Stage::Head,
            read: 0,
            md5: u.digest.as_ref().map(|_| Md5::new()),
            body: u.regex.as_ref().map(|_| Vec::new()),
        }
    }

    /// The bytes held: the head while it is incomplete, the body kept for
    /// a regex, a chunk-size line.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        let line = match &self.stage {
            Stage::Chunked(c) => c.line.capacity(),
            _ => 0,
        };
        self.head.capacity() + line + self.body.as_ref().map_or(0, Vec::capacity)
    }

    /// The next bytes read of the response to `u` (the url of [`new`]).
    ///
    /// [`new`]: Response::new
    pub(super) fn feed(&mut self, u: &Url, data: &[u8]) -> Fed {
        self.read += data.len();
        let mut body = data;
        let rest;
        if let Stage::Head = self.stage {
            // Where the blank line may start: it may span two pieces.
            let from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(data);
            let Some(split) = self.head[from..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| from + p)
            else {
                return self.more();
            };
            rest = self.head.split_off(split + 4);
            let head = std::mem::take(&mut self.head);
            self.stage = parse_head(u, &head[..split]);
            body = &rest;
        }
        let (md5, kept) = (&mut self.md5, &mut self.body);
        let mut sink = |d: &[u8]| {
            if let Some(m) = md5.as_mut() {
                m.update(d);
            }
            if let Some(b) = kept.as_mut() {
                keep(b, d);
            }
        };
        match &mut self.stage {
            Stage::Head => unreachable!("the head is complete"),
            Stage::BadStatus(_) => return Fed::Enough,
            Stage::Plain => sink(body),
            Stage::Chunked(c) => {
                c.feed(body, &mut sink);
                if c.bad() {
                    return Fed::Enough;
                }
            }
        }
        self.more()
    }

    /// More, unless [`MAX_RESPONSE`] bytes are read.
    fn more(&self) -> Fed {
        if self.read >= MAX_RESPONSE {
            Fed::Enough
        } else {
            Fed::More
        }
    }

    /// keepalived's judgement of the response as read, to the GET of `u`
    /// on `target`: the status among `u`'s codes, then with `regex` the
    /// body matching it (or not), then with `digest` the body's MD5.
    /// `Err`: the line.
    pub(super) fn finish(self, target: &str, u: &Url) -> Result<(), String> {
        match &self.stage {
            Stage::Head => {
                return Err(format!(
                    "Malformed HTTP response from {target} url {}.",
                    u.path
                ));
            }
            Stage::BadStatus(None) => {
                return Err(format!(
                    "Malformed HTTP status line from {target} url {}.",
                    u.path
                ));
            }
            Stage::BadStatus(Some(status)) => {
                return Err(format!(
                    "HTTP status code error to {target} url({}), status_code [{status}].",
                    u.path
                ));
            }
            Stage::Chunked(c) if !c.done() => {
                return Err(format!(
                    "Malformed chunked body from {target} url {}.",
                    u.path
                ));
            }
            Stage::Plain | Stage::Chunked(_) => {}
        }
        if let Some(r) = &u.regex
            && matches(
                &*compiled(r, &u.regex_options)?,
                r,
                &u.regex_options,
                self.body.as_deref().unwrap_or_default(),
            ) == u.regex_no_match
        {
            return Err(format!(
                "Regex {} failed on {target} url {}.",
                if u.regex_no_match {
                    "no-match"
                } else {
                    "match"
                },
                u.path
            ));
        }
        if let Some(want) = &u.digest {
            let got = super::hex(&self.md5.unwrap_or_default().finalize());
            if &got != want {
                return Err(format!(
                    "MD5 digest error to {target} url[{}], MD5SUM [{got}].",
                    u.path
                ));
            }
        }
        Ok(())
    }
}

/// Append `d` to the body kept for a regex, its allocation growing as a
/// `Vec`'s does but not past [`MAX_RESPONSE`] unless its length does (by
/// the last read).
fn keep(body: &mut Vec<u8>, d: &[u8]) {
    let len = body.len() + d.len();
    if len > body.capacity() {
        let cap = (body.capacity() * 2).min(MAX_RESPONSE).max(len);
        body.reserve_exact(cap - body.len());
    }
    body.extend_from_slice(d);
}

/// What the complete head (without its blank line) says: the status,
/// and whether the body is chunked.
fn parse_head(u: &Url, head: &[u8]) -> Stage {
    let head = String::from_utf8_lossy(head);
    let status: Option<u16> = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    match status {
        None => return Stage::BadStatus(None),
        Some(s) if !u.status_ok(s) => return Stage::BadStatus(Some(s)),
        Some(_) => {}
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        Stage::Chunked(Chunks::default())
    } else {
        Stage::Plain
    }
}

/// The decoder of a chunked body (HTTP/1.1), fed in pieces: each chunk
/// a size line (hexadecimal, then optional extensions `;...`, ended by
/// CRLF), its data and two bytes (CRLF; not looked at), until the size
/// 0; what follows (trailers) is not looked at.
#[derive(Default)]
pub(super) struct Chunks {
    state: ChunkState,
    /// The size line so far (bounded as the bytes read are).
    line: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a size line.
    #[default]
    Size,
    /// In a chunk's data: the bytes left.
    Data(usize),
    /// After a chunk's data: the bytes left of the two that end it.
    End(usize),
    /// The last chunk is read.
    Done,
    /// Malformed.
    Bad,
}

impl Chunks {
    /// Decode the next bytes of the body, the data to `out`.
    pub(super) fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(i) = data.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(data);
                        return;
                    };
                    self.line.extend_from_slice(&data[..=i]);
                    data = &data[i + 1..];
                    if !self.line.ends_with(b"\r\n") {
                        // A bare LF is part of the line.
                        continue;
                    }
                    let line = &self.line[..self.line.len() - 2];
                    self.state = match chunk_size(line) {
                        None => ChunkState::Bad,
                        Some(0) => ChunkState::Done,
                        Some(n) => ChunkState::Data(n),
                    };
                    self.line.clear();
                }
                ChunkState::Data(left) => {
                    let n = left.min(data.len());
                    out(&data[..n]);
                    data = &data[n..];
                    self.state = match left - n {
                        0 => ChunkState::End(2),
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::End(left) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    self.state = match left - n {
                        0 => ChunkState::Size,
                        left => ChunkState::End(left),
                    };
                }
                ChunkState::Done | ChunkState::Bad => return,
            }
        }
    }

    /// The last chunk is read: the body is complete.
    pub(super) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The body is malformed, whatever follows.
    pub(super) fn bad(&self) -> bool {
        self.state == ChunkState::Bad
    }
}

/// The size of a chunk-size line (without its CRLF): UTF-8, the
/// hexadecimal size before any `;`, blanks around it.
fn chunk_size(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()
}

/// The body of a complete chunked HTTP/1.1 body `b`.
#[cfg(test)]
pub(super) fn dechunk(b: &[u8]) -> Option<Vec<u8>> {
    let mut c = Chunks::default();
    let mut out = Vec::new();
    c.feed(b, &mut |d| out.extend_from_slice(d));
    c.done().then_some(out)
}

/// keepalived's judgement of the response `resp` (as read) to the GET of
/// `u`: fed in one piece, then finished.
#[cfg(test)]
pub(super) fn judge(target: &str, u: &Url, resp: &[u8]) -> Result<(), String> {
    let mut r = Response::new(u);
    r.feed(u, resp);
    r.finish(target, u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::check::md5_hex;

    const T: &str = "[127.0.0.1]:tcp:80";

    /// The decoder as it was, on the whole body: what [`Chunks`] must
    /// accept and reject alike.
    fn dechunk_whole(mut b: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let eol = b.windows(2).position(|w| w == b"\r\n")?;
            let line = std::str::from_utf8(&b[..eol]).ok()?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            b = &b[eol + 2..];
            if size == 0 {
                return Some(out);
            }
            out.extend_from_slice(b.get(..size)?);
            b = b.get(size + 2..)?;
        }
    }

    /// A small xorshift: splits and inputs that differ at each run of a
    /// loop, the same at each run of the test.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// `data` cut into pieces: each of `len(i)` bytes (at least 1).
    fn pieces(data: &[u8], mut len: impl FnMut() -> usize) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(len().clamp(1, rest.len()));
            out.push(a);
            rest = b;
        }
        out
    }

    /// The chunked body `b` decoded from `pieces`, as [`dechunk`].
    fn dechunk_pieces(pieces: &[&[u8]]) -> Option<Vec<u8>> {
        let mut c = Chunks::default();
        let mut out = Vec::new();
        for p in pieces {
            c.feed(p, &mut |d| out.extend_from_slice(d));
        }
        c.done().then_some(out)
    }

    /// The verdict on `resp` fed in `pieces`, reading as `http.rs` does:
    /// no more once the response says enough.
    fn judge_pieces(u: &Url, pieces: &[&[u8]]) -> Result<(), String> {
        let mut r = Response::new(u);
        for p in pieces {
            if r.feed(u, p) == Fed::Enough {
                break;
            }
        }
        r.finish(T, u)
    }

    /// The verdict on `resp` in one piece, checked to be the same in
    /// bytes, in random pieces, and split at every place in two.
    fn verdict(u: &Url, resp: &[u8]) -> Result<(), String> {
        let whole = judge(T, u, resp);
        let bytes = judge_pieces(u, &pieces(resp, || 1));
        assert_eq!(bytes, whole, "in 1-byte pieces: {:?}", resp.escape_ascii());
        for at in 0..=resp.len() {
            let (a, b) = resp.split_at(at);
            assert_eq!(judge_pieces(u, &[a, b]), whole, "split at {at}");
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50 {
            let p = pieces(resp, || 1 + rng.below(12));
            assert_eq!(judge_pieces(u, &p), whole, "in {p:?}");
        }
        whole
    }

    fn url(digest: Option<&[u8]>, regex: Option<(&str, bool)>) -> Url {
        Url {
            path: "/x".into(),
            digest: digest.map(md5_hex),
            status: vec![],
            virtualhost: None,
            regex: regex.map(|r| r.0.to_string()),
            regex_no_match: regex.is_some_and(|r| r.1),
            regex_options: Default::default(),
            tls_compliant: false,
        }
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4\r\nWiki\r\n5;x=1;y=\"a b\"\r\npedia\r\n e \r\n in\r\n\r\nchunks.\r\n\
        0;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn the_verdict_is_the_same_in_every_split() {
        let plain: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(verdict(&url(Some(b"abc"), None), plain), Ok(()));
        assert_eq!(verdict(&url(None, None), plain), Ok(()));
        let e = verdict(&url(Some(b"abd"), None), plain).unwrap_err();
        assert_eq!(
            e,
            format!(
                "MD5 digest error to {T} url[/x], MD5SUM [{}].",
                md5_hex(b"abc")
            )
        );

        let body = b"Wikipedia in\r\n\r\nchunks.";
        assert_eq!(verdict(&url(Some(body), None), CHUNKED), Ok(()));
        assert!(verdict(&url(Some(b"x"), None), CHUNKED).is_err());
        let re = Some(("(?s)pedia in\r\n\r\nchunks\\.$", false));
        assert_eq!(verdict(&url(Some(body), re), CHUNKED), Ok(()));
        // A chunk extension is not part of the data.
        let e = verdict(&url(None, Some(("last|x=1", false))), CHUNKED).unwrap_err();
        assert_eq!(e, format!("Regex match failed on {T} url /x."));
        let e = verdict(&url(None, Some(("Wiki", true))), CHUNKED).unwrap_err();
        assert_eq!(e, format!("Regex no-match failed on {T} url /x."));
        assert_eq!(verdict(&url(None, Some(("nope", true))), CHUNKED), Ok(()));
        // The regex before the digest.
        let e = verdict(&url(Some(b"x"), Some(("nope", false))), CHUNKED).unwrap_err();
        assert!(e.starts_with("Regex match failed"), "{e}");

        let malformed = format!("Malformed chunked body from {T} url /x.");
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        for body in [
            &b"4\r\nWi"[..],
            b"4\r\nWiki\r\n",
            b"4\r\nWiki\r\n0",
            b"zz\r\nWiki\r\n0\r\n\r\n",
            b"\r\n",
            b"4;\xff\r\nWiki\r\n0\r\n\r\n",
            b"",
        ] {
            let resp = [&head[..], body].concat();
            let e = verdict(&url(Some(b"Wiki"), Some(("Wiki", false))), &resp);
            assert_eq!(e.unwrap_err(), malformed, "{:?}", body.escape_ascii());
        }

        // The status first, whatever follows.
        let bad = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let e = verdict(&url(Some(b""), Some(("x", false))), bad).unwrap_err();
        assert_eq!(
            e,
            format!("HTTP status code error to {T} url(/x), status_code [503].")
        );
        let e = verdict(&url(None, None), b"HTTP/1.0\r\n\r\nabc").unwrap_err();
        assert_eq!(e, format!("Malformed HTTP status line from {T} url /x."));
        let mut ok_302 = url(None, None);
        ok_302.status = vec![(200, 200), (301, 302)];
        assert_eq!(verdict(&ok_302, b"HTTP/1.0 302 Found\r\n\r\n"), Ok(()));

        let e = verdict(&url(None, None), b"HTTP/1.0 200 OK\r\n\r").unwrap_err();
        assert_eq!(e, format!("Malformed HTTP response from {T} url /x."));
        assert!(verdict(&url(None, None), b"").is_err());
    }

    #[test]
    fn a_bad_status_ends_the_reading_with_the_head() {
        let u = url(Some(b"abc"), None);
        let mut r = Response::new(&u);
        assert_eq!(r.feed(&u, b"HTTP/1.0 500 Oops\r\n"), Fed::More);
        assert_eq!(r.feed(&u, b"\r\nabc"), Fed::Enough);
        assert_eq!(r.buffered(), 0);
        let e = r.finish(T, &u).unwrap_err();
        assert_eq!(
            e,
            format!("HTTP status code error to {T} url(/x), status_code [500].")
        );
    }

    #[test]
    fn chunks_are_decoded_as_whole_bodies_were() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut cases: Vec<Vec<u8>> = [
            &b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n"[..],
            b"4\r\nWi",
            b"0\r\n",
            b"0",
            b"+4\r\nWikiXY 0 \r\n",
            b" 4 \r\r\nWiki\r\n0\r\n",
            b"4\nx\r\nWiki\r\n0\r\n",
            b"ffffffffffffffffff\r\n",
            b"00000000000000000000004\r\nWiki\r\n0\r\n",
            b"-0\r\n",
            b"\xc3\xa9\r\n",
            b"4;\xc3\xa9\r\nWiki\r\n0\r\n",
        ]
        .iter()
        .map(|c| c.to_vec())
        .collect();
        // Random bodies of the bytes that matter, some near-chunked.
        let alphabet = b"0123abf;; x\r\n\r\n\n\r+\xff";
        for _ in 0..400 {
            let n = rng.below(24);
            cases.push(
                (0..n)
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect(),
            );
            let n = 1 + rng.below(5);
            let mut c = Vec::new();
            for _ in 0..n {
                let size = rng.below(4);
                c.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                c.extend((0..size + 2).map(|_| alphabet[rng.below(alphabet.len())]));
            }
            c.extend_from_slice(b"0\r\n");
            cases.push(c);
        }
        let mut accepted = 0;
        for c in &cases {
            let want = dechunk_whole(c);
            accepted += usize::from(want.is_some());
            assert_eq!(dechunk(c), want, "{:?}", c.escape_ascii());
            assert_eq!(
                dechunk_pieces(&pieces(c, || 1)),
                want,
                "{:?}",
                c.escape_ascii()
            );
            for _ in 0..4 {
                let p = pieces(c, || 1 + rng.below(6));
                assert_eq!(dechunk_pieces(&p), want, "{p:?}");
            }
        }
        assert!(
            accepted > 100,
            "only {accepted} accepted: too few to compare"
        );
    }

    /// A body of `n` bytes of no pattern to speak of.
    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn a_4_mib_digest_is_judged_holding_the_head_alone() {
        let head = b"HTTP/1.0 200 OK\r\nServer: t\r\n\r\n";
        let data = body(MAX_RESPONSE - head.len());
        let u = url(Some(&data), None);
        let mut r = Response::new(&u);
        assert_eq!(r.feed(&u, head), Fed::More);
        let mut fed = Vec::new();
        for p in data.chunks(16384) {
            fed.push(r.feed(&u, p));
            assert!(r.buffered() <= head.len(), "{} held", r.buffered());
        }
        assert_eq!(fed.pop(), Some(Fed::Enough), "read up to MAX_RESPONSE");
        assert!(fed.iter().all(|&f| f == Fed::More));
        assert_eq!(r.finish(T, &u), Ok(()));

        // Chunked: a size line held at most.
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let data = body(MAX_RESPONSE / 2);
        let u = url(Some(&data), None);
        let mut r = Response::new(&u);
        r.feed(&u, head);
        for c in data.chunks(1000) {
            for p in [format!("{:x};e=1\r\n", c.len()).as_bytes(), c, b"\r\n"] {
                assert_eq!(r.feed(&u, p), Fed::More);
                assert!(r.buffered() <= head.len(), "{} held", r.buffered());
            }
        }
        r.feed(&u, b"0\r\nT: 1\r\n\r\n");
        assert_eq!(r.finish(T, &u), Ok(()));
    }

    #[test]
    fn reading_stops_at_max_response_and_what_was_read_is_judged() {
        let head = b"HTTP/1.0 200 OK\r\n\r\n";
        let data = body(MAX_RESPONSE + 100_000);
        let resp = [&head[..], &data].concat();
        // The MD5 and the regex of the body read, no more.
        let read = &data[..MAX_RESPONSE - head.len()];
        let tail: String = read[read.len() - 16..]
            .iter()
            .map(|b| format!("\\x{b:02x}"))
            .collect();
        let u = url(Some(read), Some((&format!("(?-u){tail}$"), false)));
        let mut r = Response::new(&u);
        let mut n = 0;
        for p in resp.chunks(16384) {
            n += p.len();
            if r.feed(&u, p) == Fed::Enough {
                break;
            }
        }
        assert_eq!(n, MAX_RESPONSE);
        assert!(r.buffered() <= MAX_RESPONSE, "a regex's body is bounded");
        assert_eq!(r.finish(T, &u), Ok(()));

        // A head without its end within MAX_RESPONSE.
        let u = url(None, None);
        let mut r = Response::new(&u);
        let line = [b'x'; 16384];
        let mut reads = 0;
        while r.feed(&u, &line) == Fed::More {
            reads += 1;
        }
        assert_eq!(reads + 1, MAX_RESPONSE / line.len());
        let e = r.finish(T, &u).unwrap_err();
        assert_eq!(e, format!("Malformed HTTP response from {T} url /x."));
    }
}
