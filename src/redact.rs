//! The second line of defence: every log line passes through `mask_pans`,
//! which replaces any run of 12 to 19 digits that passes the Luhn check
//! (allowing single spaces or dashes between digits, as cards are printed)
//! with `[REDACTED PAN]`. Code must never log a PAN in the first place;
//! this catches the mistake when it does.

use std::borrow::Cow;
use std::io;

use tracing_subscriber::fmt::MakeWriter;

const MASK: &str = "[REDACTED PAN]";

/// Luhn (mod 10) over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Returns the text with every PAN-shaped, Luhn-valid digit run masked.
pub fn mask_pans(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let chunks = digit_chunks(bytes, i);
            i = chunks.last().map_or(i + 1, |c| c.1);
            masked.extend(pan_ranges(bytes, &chunks));
        } else {
            i += 1;
        }
    }
    if masked.is_empty() {
        return Cow::Borrowed(text);
    }
    masked.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in masked {
        if end <= copied {
            continue;
        }
        if start >= copied {
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The contiguous digit runs of a group starting at `start`, where a single
/// space or dash may stand between two runs (as printed on cards).
fn digit_chunks(bytes: &[u8], start: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut i = start;
    loop {
        let chunk_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        chunks.push((chunk_start, i));
        let separated = i + 1 < bytes.len()
            && (bytes[i] == b' ' || bytes[i] == b'-')
            && bytes[i + 1].is_ascii_digit();
        if !separated {
            return chunks;
        }
        i += 1;
    }
}

/// Byte ranges to mask: any run of whole chunks holding 12 to 19 digits
/// that passes Luhn, and any single chunk longer than 19 digits that could
/// hide a PAN inside it.
fn pan_ranges(bytes: &[u8], chunks: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for (i, &(first_start, _)) in chunks.iter().enumerate() {
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        for &(s, e) in &chunks[i..] {
            digits.extend_from_slice(&bytes[s..e]);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 12 && luhn_valid(&digits) {
                ranges.push((first_start, e));
            }
        }
    }
    for &(s, e) in chunks {
        let run = &bytes[s..e];
        let n = run.len();
        if n > 19 && (12..=19).any(|w| (0..=n - w).any(|o| luhn_valid(&run[o..o + w]))) {
            ranges.push((s, e));
        }
    }
    ranges
}

/// Wraps a log writer so that each formatted event is masked before it is written.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M> MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            buffer: Vec::with_capacity(256),
        }
    }
}

/// Buffers one event and writes it masked when flushed or dropped.
pub struct RedactingWriter<W: io::Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: io::Write> RedactingWriter<W> {
    fn drain(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let masked = mask_pans(&text);
        self.inner.write_all(masked.as_bytes())?;
        self.buffer.clear();
        self.inner.flush()
    }
}

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()
    }
}

impl<W: io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_check_digit(body: &str) -> String {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|c| luhn_valid(c.as_bytes()))
            .unwrap()
    }

    #[test]
    fn masks_plain_spaced_and_dashed_pans() {
        for line in [
            "GET /v1/tokens/4111111111111111 404",
            "card=4111 1111 1111 1111 end",
            "card=4111-1111-1111-1111",
            "{\"number\":\"378282246310005\"}",
            "x5555555555554444y",
            "GET /v1/tokens/4111 1111 1111 1111 404",
        ] {
            let masked = mask_pans(line);
            assert!(masked.contains(MASK), "{line} -> {masked}");
            assert!(
                !masked.contains("1111 1111") && !masked.contains("4444"),
                "{masked}"
            );
        }
    }

    #[test]
    fn leaves_ordinary_numbers_alone() {
        for line in [
            "latency_ms=1234 status=200",
            "4111111111111112", // fails Luhn
            "phone 0049 30 1234",
            "2026-11-25T12:00:00Z",
        ] {
            assert_eq!(mask_pans(line), line);
        }
    }

    #[test]
    fn finds_a_pan_hidden_in_a_longer_run() {
        let masked = mask_pans("id=9994111111111111111999");
        assert!(masked.contains(MASK), "{masked}");
    }

    #[test]
    fn the_writer_masks_what_passes_through() {
        use std::io::Write;
        let mut sink = Vec::new();
        {
            let mut w = RedactingWriter {
                inner: &mut sink,
                buffer: Vec::new(),
            };
            w.write_all(b"pan 4111111111111111\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink).unwrap(), format!("pan {MASK}\n"));
    }

    proptest! {
        #[test]
        fn every_luhn_valid_run_of_12_to_19_digits_is_masked(
            body in proptest::collection::vec(0u8..10, 11..=18),
            prefix in "[a-z =:/\"]{0,8}",
            suffix in "[a-z =:/\"]{0,8}",
        ) {
            let body: String = body.iter().map(|d| char::from(b'0' + d)).collect();
            let pan = with_check_digit(&body);
            let line = format!("{prefix}{pan}{suffix}");
            let masked = mask_pans(&line);
            prop_assert!(!masked.contains(&pan));
            prop_assert!(masked.contains(MASK));
        }
    }
}
