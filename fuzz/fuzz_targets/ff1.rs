//! FF1 tokens of arbitrary valid PANs: never a card number, always
//! reversible; and detokenizing arbitrary tokens never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voltvault::card::{Pan, luhn};
use voltvault::secret::SecretBytes;
use voltvault::tokens::ff1::{Ff1Tokenizer, Ff1Tweak};
use voltvault::tokens::{KeptDigits, TokenValue};

fuzz_target!(|data: (&str, bool, &[u8])| {
    let (number, keep_bin, tenant) = data;
    let Ok(tok) = Ff1Tokenizer::new(&SecretBytes::new(vec![0x42; 32])) else {
        return;
    };
    let keep = if keep_bin {
        KeptDigits::BinAndLastFour
    } else {
        KeptDigits::LastFour
    };
    let tweak = Ff1Tweak::for_tenant(tenant);
    if let Ok(pan) = Pan::parse(number) {
        let Ok(token) = tok.tokenize(&pan, keep, &tweak) else {
            panic!("tokenize failed on a valid PAN");
        };
        assert!(!luhn::passes(token.as_str().as_bytes()));
        assert_eq!(token.digit_count(), pan.digit_count());
        assert_eq!(token.last4(), pan.last4());
        let Ok(back) = tok.detokenize(&token, keep, &tweak) else {
            panic!("detokenize failed on its own token");
        };
        assert_eq!(back.expose_digits(), pan.expose_digits());
    }
    if let Ok(token) = TokenValue::parse(number) {
        let _ = tok.detokenize(&token, keep, &tweak);
    }
});
