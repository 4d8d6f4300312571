//! Cloudport's web console: Leptos pages, components and the server functions
//! they call. Built twice: with `ssr` into the `cloudport` binary, and with
//! `hydrate` into the WASM bundle that makes the same pages interactive.

pub mod api;
pub mod app;
pub mod components;
pub mod error;
pub mod model;
pub mod pages;
pub mod progress;
#[cfg(feature = "ssr")]
pub mod service;

pub use app::{shell, App};

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
