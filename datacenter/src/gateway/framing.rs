//! HTTP/1.1 message framing for the fast path: where a body ends (length,
//! chunked, until close), found without decoding it, so bodies pass
//! through byte for byte. Strict on purpose: lenient framing is how request
//! smuggling starts.

use std::io;

/// How the body of one message is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// No body (GET without length, HEAD responses, 204, 304).
    Empty,
    /// `Content-Length`: bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Responses without length: the body ends when the upstream closes.
    UntilClose,
}

impl Framing {
    /// How many of the leading `buf` bytes belong to the body (framing
    /// included), whether that completes it, and how many payload bytes
    /// those were (for the size limit).
    pub(crate) fn consume(&mut self, buf: &[u8]) -> io::Result<(usize, bool, u64)> {
        match self {
            Framing::Empty => Ok((0, true, 0)),
            Framing::Length(remaining) => {
                let take = (*remaining).min(buf.len() as u64);
                *remaining -= take;
                Ok((take as usize, *remaining == 0, take))
            }
            Framing::Chunked(c) => {
                let before = c.data;
                let (take, done) = c.scan(buf)?;
                Ok((take, done, c.data - before))
            }
            Framing::UntilClose => Ok((buf.len(), false, buf.len() as u64)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0))
    }
}

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: u32 = 4096;

#[derive(Debug)]
enum State {
    Size,
    Ext,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

/// Follows `Transfer-Encoding: chunked` framing (RFC 9112 §7.1).
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    digits: u32,
    line: u32,
    /// Payload bytes seen so far.
    data: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            data: 0,
        }
    }
}

fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Chunked {
    /// Scans `buf`; returns the bytes that belong to the body and whether
    /// the body ended there.
    fn scan(&mut self, buf: &[u8]) -> io::Result<(usize, bool)> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        if self.digits >= 15 {
                            return Err(bad("chunk size too large"));
                        }
                        self.size = self.size * 16 + d;
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => {
                        self.state = State::Ext;
                        self.line = 0;
                    }
                    b'\r' if self.digits > 0 => self.state = State::SizeLf,
                    _ => return Err(bad("invalid chunk size")),
                },
                State::Ext => {
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(bad("chunk extension too long"));
                    }
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' {
                        return Err(bad("bare LF in chunk extension"));
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(bad("invalid chunk size line"));
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                    self.data += self.size;
                    self.size = 0;
                    self.digits = 0;
                }
                State::Data(n) => {
                    let take = n.min((buf.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == n {
                        State::DataCr
                    } else {
                        State::Data(n - take)
                    };
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(bad("chunk data longer than its size"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(bad("chunk data longer than its size"));
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::FinalLf;
                    } else {
                        self.state = State::Trailer;
                        self.line = 1;
                    }
                }
                State::Trailer => {
                    self.line += 1;
                    if self.line > MAX_LINE {
                        return Err(bad("trailer line too long"));
                    }
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(bad("invalid trailer line"));
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(bad("invalid end of chunked body"));
                    }
                    self.state = State::Done;
                    return Ok((i + 1, true));
                }
                State::Done => return Ok((i, true)),
            }
            i += 1;
        }
        Ok((i, matches!(self.state, State::Done)))
    }
}

/// Headers the gateway treats specially, by name (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Host,
    Connection,
    ContentLength,
    TransferEncoding,
    Upgrade,
    /// Keep-Alive, Proxy-Connection, TE, Trailer, Proxy-Authorization,
    /// Proxy-Authenticate: one hop only, always dropped.
    HopByHop,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XRequestId,
    Other,
}

pub(crate) fn classify(name: &str) -> Known {
    let eq = |s: &str| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if eq("te") => Known::HopByHop,
        4 if eq("host") => Known::Host,
        6 if eq("expect") => Known::Expect,
        7 if eq("upgrade") => Known::Upgrade,
        7 if eq("trailer") => Known::HopByHop,
        10 if eq("connection") => Known::Connection,
        10 if eq("keep-alive") => Known::HopByHop,
        12 if eq("x-request-id") => Known::XRequestId,
        14 if eq("content-length") => Known::ContentLength,
        15 if eq("x-forwarded-for") => Known::XForwardedFor,
        16 if eq("proxy-connection") => Known::HopByHop,
        16 if eq("x-forwarded-host") => Known::XForwardedHost,
        17 if eq("transfer-encoding") => Known::TransferEncoding,
        17 if eq("x-forwarded-proto") => Known::XForwardedProto,
        18 if eq("proxy-authenticate") => Known::HopByHop,
        19 if eq("proxy-authorization") => Known::HopByHop,
        _ => Known::Other,
    }
}

/// Comma-separated tokens of a header value, trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// A strict Content-Length: digits only.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod unit {
    use super::*;

    fn scan_all(input: &[u8]) -> io::Result<(usize, bool, u64)> {
        let mut f = Framing::Chunked(Chunked::default());
        f.consume(input)
    }

    #[test]
    fn chunked_bodies_end_where_they_should() {
        let body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\nGET / HTTP/1.1";
        let (take, done, data) = scan_all(body).unwrap();
        assert!(done);
        assert_eq!(&body[take..], b"GET / HTTP/1.1");
        assert_eq!(data, 11);
        // Byte by byte gives the same answer.
        let mut f = Framing::Chunked(Chunked::default());
        let mut total = 0;
        for i in 0..body.len() {
            let (t, done, _) = f.consume(&body[i..i + 1]).unwrap();
            total += t;
            if done {
                break;
            }
        }
        assert_eq!(total, take);
        let trailers = b"0\r\nx-sum: 1\r\n\r\n";
        assert_eq!(scan_all(trailers).unwrap(), (trailers.len(), true, 0));
        assert!(!scan_all(b"5\r\nhel").unwrap().1);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        assert!(scan_all(b"x\r\n").is_err());
        assert!(scan_all(b"\r\n").is_err());
        assert!(scan_all(b"3\r\nhello\r\n").is_err());
        assert!(scan_all(b"3\nabc").is_err());
        assert!(scan_all(b"ffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn header_names_are_classified() {
        assert_eq!(classify("Content-Length"), Known::ContentLength);
        assert_eq!(classify("KEEP-ALIVE"), Known::HopByHop);
        assert_eq!(classify("x-custom"), Known::Other);
        assert_eq!(parse_length(b" 42 "), Some(42));
        assert_eq!(parse_length(b"+4"), None);
        assert_eq!(
            tokens(b"close, Upgrade").collect::<Vec<_>>(),
            [&b"close"[..], b"Upgrade"]
        );
    }
}
