//! Finding request lines in an HTTP/1 byte stream, to refuse a raw `#`.
//!
//! hyper (through the `http` crate) drops everything after a `#` in a
//! request target as a fragment before keyward sees the request:
//! `POST /api/v3/order#/../sapi/…?coin=…` would arrive as a bare order. No
//! HTTP stack we use keeps the raw target, so [`RequestLines`] reads the
//! bytes before hyper does and notes, for each request line in order,
//! whether it held a `#`; the connection hands that note to each request
//! hyper parses, and the router refuses it (`request_not_canonical`).
//!
//! To find request lines after the first, it frames messages exactly as
//! hyper 1's server does (`proto/h1/role.rs` and `decode.rs`): leading empty
//! lines skipped, `Transfer-Encoding` (its last coding `chunked`) over
//! `Content-Length`, chunk sizes, extensions and trailers byte for byte. It
//! is stricter where that is simpler: what it cannot frame the way hyper
//! would (a `Content-Length` that is not one run of digits, a framing header
//! longer than [`LINE_CAP`], a `CONNECT`) closes the connection instead, so
//! a request can never hide in bytes one side reads as a body. Where hyper
//! refuses a message it closes the connection itself, so the two cannot
//! drift apart on anything hyper goes on to serve.

use std::collections::VecDeque;

/// The longest header line whose framing value is read; a longer
/// `Content-Length` or `Transfer-Encoding` line closes the connection.
pub(super) const LINE_CAP: usize = 8 * 1024;

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unframeable(pub(super) &'static str);

impl std::fmt::Display for Unframeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request framing refused: {}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request line: empty lines are skipped.
    Start,
    /// A carriage return among the empty lines.
    StartLf,
    /// In a request line.
    RequestLine,
    /// In a header line (kept in `line`).
    Header,
    /// A body of known length: bytes left.
    Body(u64),
    /// A chunked body.
    Chunked(Chunk),
}

/// hyper's `ChunkedState`, with the chunk's bytes left in `Data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

/// Framing read from one message's head.
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    hash: bool,
    connect: bool,
    in_method: bool,
    transfer_encoding: bool,
    chunked: bool,
    content_length: Option<u64>,
}

/// The request-line finder for one connection.
#[derive(Debug)]
pub(super) struct RequestLines {
    state: State,
    head: Head,
    line: Vec<u8>,
    line_overflow: bool,
    /// For each request line read and not yet taken: whether it held a `#`.
    seen: VecDeque<bool>,
}

impl Default for RequestLines {
    fn default() -> Self {
        Self {
            state: State::Start,
            head: Head::default(),
            line: Vec::new(),
            line_overflow: false,
            seen: VecDeque::new(),
        }
    }
}

impl RequestLines {
    /// Whether the next request hyper parsed held a `#` in its request
    /// line; `None` if no request line was seen for it (which framing as
    /// hyper does rules out; callers refuse such a request).
    pub(super) fn next_request(&mut self) -> Option<bool> {
        self.seen.pop_front()
    }

    /// Reads the next bytes of the stream.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<(), Unframeable> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Body(left) => {
                    let take = skip(left, bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { State::Start } else { State::Body(left) };
                }
                State::Chunked(Chunk::Data(left)) => {
                    let take = skip(left, bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = State::Chunked(if left == 0 { Chunk::DataCr } else { Chunk::Data(left) });
                }
                // A request line's target and version up to its line feed
                // in one piece: byte by byte, only a `#` changes anything.
                State::RequestLine if !self.head.in_method && bytes[i] != b'\n' => {
                    let rest = &bytes[i..];
                    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    self.head.hash |= memchr::memchr(b'#', &rest[..end]).is_some();
                    i += end;
                }
                // A header line up to its line feed in one piece; the same
                // as byte by byte (kept up to LINE_CAP, longer marked).
                State::Header if bytes[i] != b'\n' => {
                    let rest = &bytes[i..];
                    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    let room = LINE_CAP.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&rest[..end.min(room)]);
                    self.line_overflow |= end > room;
                    i += end;
                }
                _ => {
                    self.byte(bytes[i])?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), Unframeable> {
        self.state = match (self.state, b) {
            (State::Start, b'\n') => State::Start,
            (State::Start, b'\r') => State::StartLf,
            (State::StartLf, b'\n') => State::Start,
            (State::StartLf, _) => return Err(Unframeable("carriage return without line feed")),
            (State::Start, _) => {
                self.head = Head { in_method: true, ..Head::default() };
                self.line.clear();
                self.request_line(b)
            }
            (State::RequestLine, _) => self.request_line(b),
            (State::Header, b'\n') => self.end_header_line()?,
            (State::Header, c) => {
                if self.line.len() < LINE_CAP {
                    self.line.push(c);
                } else {
                    self.line_overflow = true;
                }
                State::Header
            }
            (State::Chunked(c), x) => chunk(c, x)?.map_or(State::Start, State::Chunked),
            // `feed` skips bodies in bulk; byte by byte is the same.
            (State::Body(n), _) => {
                if n > 1 {
                    State::Body(n - 1)
                } else {
                    State::Start
                }
            }
        };
        Ok(())
    }

    fn request_line(&mut self, b: u8) -> State {
        let h = &mut self.head;
        match b {
            b'\n' => {
                self.seen.push_back(h.hash);
                self.line.clear();
                self.line_overflow = false;
                return State::Header;
            }
            b'#' => h.hash = true,
            b' ' if h.in_method => {
                h.in_method = false;
                h.connect = self.line == b"CONNECT";
            }
            // A method is short; a long one is not CONNECT and need not be kept.
            c if h.in_method && self.line.len() < 16 => self.line.push(c),
            _ => {}
        }
        State::RequestLine
    }

    fn end_header_line(&mut self) -> Result<State, Unframeable> {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let overflow = std::mem::replace(&mut self.line_overflow, false);
        if line.is_empty() && !overflow {
            self.line = line;
            return self.end_head();
        }
        let name_end = line.iter().position(|&c| c == b':').unwrap_or(line.len());
        let (name, value) = line.split_at(name_end);
        let value = value.get(1..).unwrap_or_default();
        let h = &mut self.head;
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if overflow {
                return Err(Unframeable("Transfer-Encoding line too long"));
            }
            h.transfer_encoding = true;
            h.chunked =
                value.rsplit(|&c| c == b',').next().is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if overflow {
                return Err(Unframeable("Content-Length line too long"));
            }
            let n = digits(trim(value)).ok_or(Unframeable("Content-Length is not a number"))?;
            if h.content_length.is_some_and(|prev| prev != n) {
                return Err(Unframeable("two different Content-Length values"));
            }
            h.content_length = Some(n);
        }
        line.clear();
        self.line = line;
        Ok(State::Header)
    }

    fn end_head(&mut self) -> Result<State, Unframeable> {
        let h = self.head;
        if h.connect {
            return Err(Unframeable("CONNECT is not served"));
        }
        Ok(match (h.transfer_encoding, h.chunked, h.content_length) {
            (true, true, _) => State::Chunked(Chunk::Start),
            (true, false, _) => return Err(Unframeable("Transfer-Encoding without chunked last")),
            (false, _, Some(0) | None) => State::Start,
            (false, _, Some(n)) => State::Body(n),
        })
    }
}

fn skip(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |l| l.min(available))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !matches!(c, b' ' | b'\t')).map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| match c {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(c - b'0')),
        _ => None,
    })
}

fn hex(c: u8) -> Option<u64> {
    (c as char).to_digit(16).map(u64::from)
}

/// One step of hyper's chunked decoder; `None` once the body has ended.
fn chunk(state: Chunk, b: u8) -> Result<Option<Chunk>, Unframeable> {
    let bad = Err(Unframeable("malformed chunked body"));
    Ok(Some(match (state, b) {
        (Chunk::Start, c) => match hex(c) {
            Some(d) => Chunk::Size(d),
            None => return bad,
        },
        (Chunk::Size(n), c) if hex(c).is_some() => {
            let d = hex(c).unwrap_or_default();
            match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                Some(n) => Chunk::Size(n),
                None => return Err(Unframeable("chunk size overflows")),
            }
        }
        (Chunk::Size(n) | Chunk::SizeLws(n), b'\t' | b' ') => Chunk::SizeLws(n),
        (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Extension(n), b';') => Chunk::Extension(n),
        (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
        (Chunk::Extension(_), b'\n') => return bad,
        (Chunk::Extension(n), _) => Chunk::Extension(n),
        (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
        (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
        (Chunk::Data(n), _) => {
            if n > 1 {
                Chunk::Data(n - 1)
            } else {
                Chunk::DataCr
            }
        }
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataLf, b'\n') => Chunk::Start,
        (Chunk::EndCr, b'\r') => Chunk::EndLf,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
        (Chunk::EndLf, b'\n') => return Ok(None),
        _ => return bad,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; the notes of its request lines.
    fn fed(input: &[u8], step: usize) -> Result<Vec<bool>, Unframeable> {
        let mut lines = RequestLines::default();
        for piece in input.chunks(step) {
            lines.feed(piece)?;
        }
        Ok(std::iter::from_fn(|| lines.next_request()).collect())
    }

    fn same_in_any_pieces(input: &[u8]) -> Vec<bool> {
        let whole = fed(input, input.len().max(1)).expect("frames");
        for step in [1, 2, 3, 7] {
            assert_eq!(fed(input, step).expect("frames"), whole, "pieces of {step}");
        }
        whole
    }

    #[test]
    fn request_lines_with_a_hash_are_noted_and_headers_and_bodies_are_not() {
        let input =
            b"POST /api/v3/order#/../sapi?coin=x HTTP/1.1\r\nHost: a#b\r\nContent-Length: 9\r\n\r\n{\"a\":\"#\"}\
            GET /x?y=1#z HTTP/1.1\r\n\r\nGET /ok HTTP/1.1\r\nX: #\r\n\r\n";
        assert_eq!(same_in_any_pieces(input), [true, true, false]);
    }

    #[test]
    fn a_request_line_inside_a_body_is_body() {
        // A body that looks like a pipelined request is not one.
        let body = b"\r\nGET /a#b HTTP/1.1\r\n\r\n";
        let mut input = format!("POST /p HTTP/1.1\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"\n\r\nGET /n#o HTTP/1.0\n\n");
        assert_eq!(same_in_any_pieces(&input), [false, true], "leading empty lines are skipped");
    }

    #[test]
    fn chunked_bodies_are_framed_as_hyper_frames_them() {
        let input = b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
            5 ;ext=#\r\nGET /\r\n10\r\n#123456789abcdef\r\n0\r\nX-T: #\r\n\r\nDELETE /d#e HTTP/1.1\r\n\r\n";
        assert_eq!(same_in_any_pieces(input), [false, true]);
    }

    #[test]
    fn what_cannot_be_framed_closes_the_connection() {
        let refused: [&[u8]; 8] = [
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nabcde\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
            b"\rGET / HTTP/1.1\r\n\r\n",
        ];
        for input in refused {
            assert!(fed(input, 1).is_err(), "{}", String::from_utf8_lossy(input));
        }
        let mut long = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
        long.extend(std::iter::repeat_n(b'0', LINE_CAP));
        long.extend_from_slice(b"5\r\n\r\n");
        for step in [1, 4096, LINE_CAP, long.len()] {
            assert!(fed(&long, step).is_err(), "a framing header past the cap is refused (pieces of {step})");
        }
        let mut other = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        other.extend(std::iter::repeat_n(b'#', LINE_CAP * 2));
        other.extend_from_slice(b"\r\n\r\nGET /a#b HTTP/1.1\r\n\r\n");
        for step in [1, 1000, LINE_CAP, other.len()] {
            assert_eq!(fed(&other, step).expect("a long other header is fine"), [false, true], "pieces of {step}");
        }
    }
}
