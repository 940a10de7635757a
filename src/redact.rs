//! The second line of defence: every log line passes through `mask_pans`,
//! which replaces any run of 12 to 19 digits that passes the Luhn check
//! (allowing a single space, dash, plus or `%20` between digit groups)
//! with `[REDACTED PAN]`. Code must never log a PAN in the first place;
//! this catches the mistake when it does.
//!
//! A UUID in its canonical form (`8-4-4-4-12` hex digits) with at least one
//! letter is left whole: voltvault's ids are UUIDs, and about one random
//! UUID in two hundred has dash-separated all-digit groups that pass Luhn,
//! which would otherwise mask a session id in an audit record or a log
//! line. A card number printed by mistake is never in that shape.

use std::borrow::Cow;
use std::io;

use tracing_subscriber::fmt::MakeWriter;

use crate::card::luhn::passes as luhn_valid;

const MASK: &str = "[REDACTED PAN]";

/// Returns the text with every PAN-shaped, Luhn-valid digit run masked.
pub fn mask_pans(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = uuid_at(bytes, i) {
            i += len;
        } else if bytes[i].is_ascii_digit() {
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

/// The length of a canonical UUID with a hex letter starting at `i`, if one
/// stands there as a whole word.
fn uuid_at(bytes: &[u8], i: usize) -> Option<usize> {
    const LEN: usize = 36;
    let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
    let candidate = bytes.get(i..i + LEN)?;
    let word_end = bytes
        .get(i + LEN)
        .is_none_or(|b| !b.is_ascii_alphanumeric());
    let shaped = candidate.iter().enumerate().all(|(k, b)| match k {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    let has_letter = candidate.iter().any(u8::is_ascii_alphabetic);
    (word_start && word_end && shaped && has_letter).then_some(LEN)
}

/// The contiguous digit runs of a group starting at `start`, where a single
/// separator may stand between two runs (as cards are printed or typed).
fn digit_chunks(bytes: &[u8], start: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut i = start;
    loop {
        let chunk_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        chunks.push((chunk_start, i));
        match separator_len(&bytes[i..]) {
            Some(n) if bytes.get(i + n).is_some_and(u8::is_ascii_digit) => i += n,
            _ => return chunks,
        }
    }
}

/// A space, dash or plus, or a space as it appears in a URL (`%20`).
fn separator_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b' ' | b'-' | b'+', ..] => Some(1),
        [b'%', b'2', b'0', ..] => Some(3),
        _ => None,
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
            "GET /v1/cards/5555%205555%205555%204444?x=1",
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
    fn uuids_are_ids_not_card_numbers() {
        // Its last group alone is a Luhn-valid run of 12 digits.
        let group = with_check_digit("40128888888");
        let id = format!("019af3c2-5d1e-7a40-8123-{group}");
        assert!(mask_pans(&group).contains(MASK));
        for line in [
            id.clone(),
            format!("payment_session:{id}"),
            format!("GET /v1/payment-sessions/{id} 200"),
            id.to_uppercase(),
        ] {
            assert_eq!(mask_pans(&line), line);
        }
        // Not a UUID in its canonical form: masked as before.
        for line in [
            format!("x{id}"),
            format!("019af3c2-5d1e-7a40-812g-{group}"),
            format!("01234567-8901-2345-6789-{group}"),
        ] {
            assert!(mask_pans(&line).contains(MASK), "{line}");
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
