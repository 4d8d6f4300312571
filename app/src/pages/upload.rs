//! Sending a component's source from the browser: the file goes straight to
//! the REST route (`PUT …/components/{name}/source`, up to 100 MiB) with
//! `fetch`, and the page moves on to the build event, whose log streams live.
//! The create form sends a chosen archive the same way to its preview
//! (`POST …/datacenters/{datacenter}/detect/archive`).

use leptos::prelude::*;

/// The largest archive the console takes.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub const MAX_UPLOAD: f64 = 100.0 * 1024.0 * 1024.0;

/// A file picker and an "Upload and build" button for one component.
#[component]
pub fn UploadForm(team: String, app: String, name: String) -> impl IntoView {
    let file = NodeRef::<leptos::html::Input>::new();
    let state = RwSignal::new(UploadState::Idle);
    let navigate = leptos_router::hooks::use_navigate();
    let send = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let Some(input) = file.get_untracked() else {
                return;
            };
            let url = format!("/api/v1/teams/{team}/apps/{app}/components/{name}/source");
            start_upload(input, url, team.clone(), state, navigate.clone());
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&team, &app, &name, &navigate);
    };
    view! {
        <div class="upload">
            <label>"Source archive (.tar.gz or .zip, at most 100 MiB)"
                <input type="file" node_ref=file accept=".tar.gz,.tgz,.zip,application/gzip,application/x-gzip,application/zip"/>
            </label>
            <button type="button" on:click=send disabled=move || state.get() == UploadState::Sending>"Upload and build"</button>
            {move || match state.get() {
                UploadState::Idle => ().into_any(),
                UploadState::Sending => view! { <span class="muted" role="status">"Uploading…"</span> }.into_any(),
                UploadState::Failed(message) => view! { <span class="error-text" role="status">{message}</span> }.into_any(),
            }}
            <noscript><p class="hint">"Uploading from the browser needs JavaScript; " <code>"cloudport push"</code> " works without."</p></noscript>
        </div>
    }
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum UploadState {
    Idle,
    Sending,
    Failed(String),
}

/// Sends the file chosen in `input` to `url`, then opens the build event.
#[cfg(feature = "hydrate")]
pub fn start_upload(
    input: web_sys::HtmlInputElement,
    url: String,
    team: String,
    state: RwSignal<UploadState>,
    navigate: impl Fn(&str, leptos_router::NavigateOptions) + Clone + 'static,
) {
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        state.set(UploadState::Failed(
            "Choose a .tar.gz or .zip file first.".into(),
        ));
        return;
    };
    if file.size() > MAX_UPLOAD {
        state.set(UploadState::Failed(format!(
            "{} is {:.0} MiB; the most is 100 MiB.",
            file.name(),
            file.size() / 1024.0 / 1024.0
        )));
        return;
    }
    state.set(UploadState::Sending);
    leptos::task::spawn_local(async move {
        // The answer is the build's event.
        match send_file::<crate::model::EventRef>("PUT", &url, &file).await {
            Ok(ev) => {
                state.set(UploadState::Idle);
                navigate(
                    &format!("/teams/{team}/events/{}/{}", ev.datacenter, ev.event_id),
                    Default::default(),
                );
            }
            Err(e) => state.set(UploadState::Failed(e.message)),
        }
    });
}

/// Sends a file as the raw body of a `method` request to a console route,
/// with the page's session cookie, and reads the JSON answer: `T`, or the
/// console's JSON error (`request` when the console could not be reached or
/// answered something else).
#[cfg(feature = "hydrate")]
pub async fn send_file<T: serde::de::DeserializeOwned>(
    method: &str,
    url: &str,
    file: &web_sys::File,
) -> Result<T, crate::error::AppError> {
    use crate::error::AppError;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let failed = |e: wasm_bindgen::JsValue| {
        AppError::new(
            "request",
            e.as_string()
                .unwrap_or_else(|| "The archive could not be sent.".into()),
        )
    };
    let window = web_sys::window().ok_or_else(|| AppError::new("request", "no window"))?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_credentials(web_sys::RequestCredentials::SameOrigin);
    let headers = web_sys::Headers::new().map_err(failed)?;
    headers
        .set("content-type", "application/octet-stream")
        .map_err(failed)?;
    init.set_headers(&headers);
    init.set_body(file);
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| {
            AppError::new(
                "request",
                "The upload broke off: the console could not be reached.",
            )
        })?
        .dyn_into()
        .map_err(failed)?;
    let text = JsFuture::from(resp.text().map_err(failed)?)
        .await
        .map_err(failed)?
        .as_string()
        .unwrap_or_default();
    if resp.ok() {
        serde_json::from_str::<T>(&text).map_err(|e| AppError::new("request", e.to_string()))
    } else {
        Err(serde_json::from_str::<AppError>(&text).unwrap_or_else(|_| {
            AppError::new(
                "request",
                format!("The console answered {}.", resp.status()),
            )
        }))
    }
}
