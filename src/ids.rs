//! Typed identifiers: a `TenantId` can never be passed where a `SessionId` is
//! expected, and none of them is a bare string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7), so rows cluster by creation.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// An operator's tenant: every record belongs to exactly one.
    TenantId
);

typed_id!(
    /// An EV payment session: one hold, its meter readings and its capture.
    PaymentSessionId
);

typed_id!(
    /// A staff user (operator, auditor, admin).
    UserId
);

typed_id!(
    /// A charger CA registered for a tenant.
    ChargerCaId
);

typed_id!(
    /// A tenant's webhook endpoint.
    WebhookId
);

typed_id!(
    /// One event on its way to one webhook endpoint.
    DeliveryId
);

typed_id!(
    /// A driver's or a fleet's billing account.
    AccountId
);

typed_id!(
    /// An issued invoice.
    InvoiceId
);

typed_id!(
    /// One e-mail in the outbox.
    MailId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = TenantId::generate();
        let parsed: TenantId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        assert!("not-a-uuid".parse::<TenantId>().is_err());
    }
}
