//! Billing: tariffs, their versions, session pricing and the price display;
//! receipts, CDRs and accounting exports. Pure domain logic: no HTTP, no SQL,
//! no clock (time comes in as values) — except `service`, which reads what
//! those need through the store's ports.

pub mod cdr;
pub mod display;
mod exact;
pub mod exports;
pub mod invoice;
pub mod invoices;
pub mod location;
pub mod ocpi_tariff;
pub mod pricing;
pub mod receipt;
pub mod receipt_render;
pub mod restriction;
pub mod service;
pub mod tariff;
pub mod versions;
pub mod zone;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod worked_examples;

pub use display::{DisplayError, MAX_DISPLAY_CHARS, price_display};
pub use pricing::{Cost, CostLine, MeterReading, PriceLimitApplied, PricingError, price_session};
pub use tariff::{
    Dimension, PriceComponent, PriceLimit, Tariff, TariffElement, TariffError, TariffProblem,
};
pub use versions::{TariffVersions, VersionError};
pub use zone::TariffZone;
