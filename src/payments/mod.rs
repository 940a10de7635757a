//! Payments: the acquirer connectors (the payment-session state machine will live beside them).

pub mod connectors;
