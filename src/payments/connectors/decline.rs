//! Why an acquirer refused a card, as a stable set of codes every connector
//! maps into, with a line short enough for a charger's screen.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineCode {
    InsufficientFunds,
    DoNotHonour,
    /// A refusal the issuer gave no reason for.
    CardDeclined,
    ExpiredCard,
    IncorrectCvc,
    IncorrectNumber,
    /// The acquirer or issuer failed while deciding; trying again may work.
    ProcessingError,
    LostOrStolen,
    /// Suspected fraud. The screen says no more than "declined".
    Fraudulent,
    /// Spending or velocity limits of the card.
    LimitExceeded,
    /// The card cannot be used for this kind of payment.
    CardNotSupported,
    CurrencyNotSupported,
    /// The issuer wants cardholder authentication (3-D Secure) the charger cannot give.
    AuthenticationRequired,
    TryAgainLater,
}

impl DeclineCode {
    pub const ALL: [DeclineCode; 14] = [
        DeclineCode::InsufficientFunds,
        DeclineCode::DoNotHonour,
        DeclineCode::CardDeclined,
        DeclineCode::ExpiredCard,
        DeclineCode::IncorrectCvc,
        DeclineCode::IncorrectNumber,
        DeclineCode::ProcessingError,
        DeclineCode::LostOrStolen,
        DeclineCode::Fraudulent,
        DeclineCode::LimitExceeded,
        DeclineCode::CardNotSupported,
        DeclineCode::CurrencyNotSupported,
        DeclineCode::AuthenticationRequired,
        DeclineCode::TryAgainLater,
    ];

    /// The stable snake_case code, as serialized.
    pub fn code(self) -> &'static str {
        match self {
            DeclineCode::InsufficientFunds => "insufficient_funds",
            DeclineCode::DoNotHonour => "do_not_honour",
            DeclineCode::CardDeclined => "card_declined",
            DeclineCode::ExpiredCard => "expired_card",
            DeclineCode::IncorrectCvc => "incorrect_cvc",
            DeclineCode::IncorrectNumber => "incorrect_number",
            DeclineCode::ProcessingError => "processing_error",
            DeclineCode::LostOrStolen => "lost_or_stolen",
            DeclineCode::Fraudulent => "fraudulent",
            DeclineCode::LimitExceeded => "limit_exceeded",
            DeclineCode::CardNotSupported => "card_not_supported",
            DeclineCode::CurrencyNotSupported => "currency_not_supported",
            DeclineCode::AuthenticationRequired => "authentication_required",
            DeclineCode::TryAgainLater => "try_again_later",
        }
    }

    /// At most 24 characters, for a charger display. Lost, stolen and
    /// fraud say only "declined": the person at the charger may not be
    /// the cardholder, and telling them why helps nobody.
    pub fn display_message(self) -> &'static str {
        match self {
            DeclineCode::InsufficientFunds => "Insufficient funds",
            DeclineCode::ExpiredCard => "Card expired",
            DeclineCode::IncorrectCvc | DeclineCode::IncorrectNumber => "Check card details",
            DeclineCode::ProcessingError | DeclineCode::TryAgainLater => "Please try again",
            DeclineCode::LimitExceeded => "Card limit reached",
            DeclineCode::CardNotSupported
            | DeclineCode::CurrencyNotSupported
            | DeclineCode::AuthenticationRequired => "Use another card",
            DeclineCode::DoNotHonour
            | DeclineCode::CardDeclined
            | DeclineCode::LostOrStolen
            | DeclineCode::Fraudulent => "Card declined",
        }
    }
}

impl std::fmt::Display for DeclineCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_serde_and_fit_a_screen() {
        for code in DeclineCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.code())
            );
            assert!(code.display_message().len() <= 24, "{code}");
        }
        let unique: std::collections::HashSet<_> =
            DeclineCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(unique.len(), DeclineCode::ALL.len());
    }
}
