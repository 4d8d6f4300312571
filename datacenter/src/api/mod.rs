//! The datacenter API: the contract types (always compiled, wasm-safe) and,
//! with the `service` feature, the HTTP routes and the live stream.

mod types;
pub use types::*;

#[cfg(feature = "service")]
pub mod gateway_routes;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod queue_admin;
#[cfg(feature = "service")]
pub mod routes;
#[cfg(feature = "service")]
pub mod stream;
