//! A Cloudport datacenter. Without features this crate is only the API
//! contract (`api`), shared by the console, the UI (WASM) and the datacenter.
//! `client` adds a typed client; `service` adds the datacenter itself.

pub mod api;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "service")]
pub mod builder;
#[cfg(feature = "service")]
pub mod crypto;
#[cfg(feature = "service")]
pub mod error;
#[cfg(feature = "service")]
pub mod gateway;
#[cfg(feature = "service")]
pub mod logs;
#[cfg(feature = "service")]
pub mod queue;
#[cfg(feature = "service")]
pub mod reconciler;
#[cfg(feature = "service")]
pub mod routing;
#[cfg(feature = "service")]
pub mod runtime;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod validate;
#[cfg(feature = "service")]
pub mod webhook;
#[cfg(feature = "service")]
pub mod worker;
