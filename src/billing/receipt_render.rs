//! A receipt for people: HTML and PDF. Both are made from the [`Receipt`]
//! alone, so they can never show more than the JSON does (no card number
//! exists here to show).
//!
//! HTML: every value is escaped; no scripts, styles or external resources
//! (the service's CSP forbids them anyway). PDF: one A4 page per 60 lines in
//! Helvetica, one of the 14 standard fonts, which PDF readers bring along,
//! so nothing is embedded; text is WinAnsi-encoded.

use std::fmt::Write as _;

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::receipt::Receipt;
use crate::money::Money;

/// The receipt as lines of (label, value), shared by both formats.
fn rows(r: &Receipt) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| out.push((k.to_owned(), v));
    if let Some(name) = &r.operator.name {
        row("Operator", name.clone());
    }
    if let Some(address) = &r.operator.address {
        row("Address", address.clone());
    }
    if let Some(vat_id) = &r.operator.vat_id {
        row("VAT ID", vat_id.clone());
    }
    row("Receipt", r.id.clone());
    row("Charge point (EVSE)", r.evse_id.clone());
    row("Connector", r.connector_id.clone());
    row("Start", r.started_at.to_rfc3339());
    row("End", r.ended_at.to_rfc3339());
    row("Energy", format!("{} kWh", r.energy_kwh));
    row(
        "Tariff",
        format!("{} (version {})", r.tariff.id, r.tariff.version),
    );
    row(
        "Card",
        format!("{} ending {}", r.card.brand.to_uppercase(), r.card.last4),
    );
    if let Some(code) = &r.authorization_code {
        row("Authorization code", code.clone());
    }
    out
}

fn line_rows(r: &Receipt) -> Vec<[String; 4]> {
    r.lines
        .iter()
        .map(|l| {
            [
                l.description.clone(),
                l.quantity_display.clone().unwrap_or_default(),
                l.unit_price.clone().unwrap_or_default(),
                l.amount_incl_vat.to_string(),
            ]
        })
        .collect()
}

fn vat_rows(r: &Receipt) -> Vec<[String; 4]> {
    r.vat
        .iter()
        .map(|v| {
            [
                v.rate
                    .as_ref()
                    .map_or_else(|| "no VAT".to_owned(), |x| format!("{x}%")),
                v.net.to_string(),
                v.vat.to_string(),
                v.gross.to_string(),
            ]
        })
        .collect()
}

fn total_rows(r: &Receipt) -> Vec<(String, Money)> {
    let mut out = vec![
        ("Total excl. VAT".to_owned(), r.total_excl_vat),
        ("VAT".to_owned(), r.total_vat),
        ("Total paid incl. VAT".to_owned(), r.total_incl_vat),
    ];
    for refund in &r.refunds {
        out.push((
            format!("Refund {}", refund.at.format("%Y-%m-%d")),
            Money::new(-refund.amount.value, refund.amount.currency),
        ));
    }
    if !r.refunds.is_empty() {
        out.push(("Net paid".to_owned(), r.net_paid));
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained HTML page.
pub fn html(r: &Receipt) -> String {
    let mut h = String::new();
    let e = escape;
    // `write!` to a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Receipt {}</title></head><body>\n<h1>Charging receipt</h1>\n<table>\n",
        e(&r.id)
    );
    for (k, v) in rows(r) {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", e(&k), e(&v));
    }
    h.push_str("</table>\n<h2>Items</h2>\n<table>\n<tr><th>Item</th><th>Quantity</th><th>Unit price excl. VAT</th><th>Amount incl. VAT</th></tr>\n");
    for cells in line_rows(r) {
        h.push_str("<tr>");
        for c in cells {
            let _ = write!(h, "<td>{}</td>", e(&c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>VAT</h2>\n<table>\n<tr><th>Rate</th><th>Net</th><th>VAT</th><th>Gross</th></tr>\n");
    for cells in vat_rows(r) {
        h.push_str("<tr>");
        for c in cells {
            let _ = write!(h, "<td>{}</td>", e(&c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Total</h2>\n<table>\n");
    for (k, v) in total_rows(r) {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{}</td></tr>",
            e(&k),
            e(&v.to_string())
        );
    }
    let _ = write!(
        h,
        "</table>\n<p>This receipt: {}</p>\n</body></html>\n",
        e(&r.url)
    );
    h
}

/// Text in WinAnsiEncoding: Latin-1 maps to itself, the euro sign to 0x80,
/// anything else becomes `?`.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{20AC}' => 0x80,
            c if (' '..='~').contains(&c) => c as u8,
            c if ('\u{A0}'..='\u{FF}').contains(&c) => u32::from(c) as u8,
            _ => b'?',
        })
        .collect()
}

const LINES_PER_PAGE: usize = 60;

/// A PDF document (A4, Helvetica).
pub fn pdf(r: &Receipt) -> Vec<u8> {
    let mut text: Vec<(bool, String)> = vec![(true, "Charging receipt".to_owned())];
    text.push((false, String::new()));
    for (k, v) in rows(r) {
        text.push((false, format!("{k}: {v}")));
    }
    text.push((false, String::new()));
    text.push((true, "Items".to_owned()));
    for [item, qty, price, amount] in line_rows(r) {
        let detail = match (qty.is_empty(), price.is_empty()) {
            (true, true) => String::new(),
            _ => format!(" ({qty} at {price})"),
        };
        text.push((false, format!("{item}{detail}: {amount}")));
    }
    text.push((false, String::new()));
    text.push((true, "VAT".to_owned()));
    for [rate, net, vat, gross] in vat_rows(r) {
        text.push((
            false,
            format!("{rate}: net {net}, VAT {vat}, gross {gross}"),
        ));
    }
    text.push((false, String::new()));
    for (k, v) in total_rows(r) {
        text.push((true, format!("{k}: {v}")));
    }
    text.push((false, String::new()));
    text.push((false, format!("This receipt: {}", r.url)));

    let pages: Vec<&[(bool, String)]> = text.chunks(LINES_PER_PAGE).collect();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let first_page = 5;
    let page_ref = |i: usize| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0));
    let content_ref = |i: usize| Ref::new(first_page + 1 + 2 * i32::try_from(i).unwrap_or(0));

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(i32::try_from(pages.len()).unwrap_or(1));
    for (name, id) in [
        (b"Helvetica".as_slice(), regular),
        (b"Helvetica-Bold", bold),
    ] {
        pdf.type1_font(id)
            .base_font(Name(name))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, lines) in pages.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0))
            .parent(tree)
            .contents(content_ref(i));
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), regular);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();

        let mut content = Content::new();
        let mut y = 800.0;
        for (strong, line) in lines.iter() {
            content.begin_text();
            content.set_font(Name(if *strong { b"F2" } else { b"F1" }), 10.0);
            content.next_line(50.0, y);
            content.show(Str(&win_ansi(line)));
            content.end_text();
            y -= 12.5;
        }
        pdf.stream(content_ref(i), &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_it_shows() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn pdf_text_is_win_ansi() {
        assert_eq!(win_ansi("12,50 €"), b"12,50 \x80".to_vec());
        assert_eq!(win_ansi("Köln ✓"), b"K\xf6ln ?".to_vec());
    }
}
