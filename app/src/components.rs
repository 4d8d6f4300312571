//! Pieces shared by the pages: the layout with its navigation, error and empty
//! states, and small formatting helpers.

use crate::app::MeResource;
use crate::error::AppError;
use crate::model::Me;
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let me = expect_context::<MeResource>();
    view! {
        <div class="shell">
            <header class="topbar">
                <a class="brand" href="/">
                    <span class="logo">"☁"</span>
                    "Cloudport"
                </a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match me.await {
                            Ok(Some(me)) => view! { <UserMenu me/> }.into_any(),
                            _ => view! { <a href="/login">"Sign in"</a> }.into_any(),
                        }
                    })}
                </Suspense>
            </header>
            <div class="body">
                <nav class="sidebar" aria-label="Main">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            let admin = matches!(me.await, Ok(Some(ref m)) if m.is_admin);
                            view! {
                                <A href="/" exact=true>"Dashboard"</A>
                                <A href="/teams">"Teams"</A>
                                <Show when=move || admin>
                                    <A href="/datacenters">"Datacenters"</A>
                                    <A href="/users">"Users"</A>
                                </Show>
                                <A href="/tokens">"API tokens"</A>
                                <A href="/audit">"Audit log"</A>
                                <A href="/account">"Account"</A>
                            }
                        })}
                    </Suspense>
                </nav>
                <main class="content">{children()}</main>
            </div>
        </div>
    }
}

#[component]
fn UserMenu(me: Me) -> impl IntoView {
    view! {
        <div class="usermenu">
            <span class="whoami">
                {me.username.clone()}
                {me.is_admin.then(|| view! { <span class="badge">"platform admin"</span> })}
            </span>
            <form method="post" action="/logout">
                <button type="submit" class="link">"Log out"</button>
            </form>
        </div>
    }
}

/// An error as people should see it; a lapsed session gets a way back in.
#[component]
pub fn ErrorBox(error: AppError) -> impl IntoView {
    let login = error.is_unauthorized();
    view! {
        <div class="alert error" role="alert">
            <strong>{error_title(&error.error)}</strong>
            " "
            {error.message.clone()}
            {login.then(|| view! { " " <a href="/login">"Sign in again"</a> })}
        </div>
    }
}

fn error_title(code: &str) -> &'static str {
    match code {
        "unauthorized" => "Signed out.",
        "forbidden" => "Not allowed.",
        "not_found" => "Not found.",
        "invalid" => "Please check your input.",
        "conflict" => "Already exists.",
        "rate_limited" => "Slow down.",
        _ => "Something went wrong.",
    }
}

/// Shows the outcome of the last submission of a form: its error, or a note.
pub fn action_result<T: 'static>(
    value: impl Fn() -> Option<Result<T, AppError>> + Send + Sync + 'static,
    success: &'static str,
) -> impl IntoView {
    move || match value() {
        Some(Ok(_)) => view! { <div class="alert ok" role="status">{success}</div> }.into_any(),
        Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
        None => ().into_any(),
    }
}

/// Shows the outcome of an operation: its error, or a note with a link to
/// the event that follows the work.
pub fn event_result(
    value: impl Fn() -> Option<Result<crate::model::EventRef, AppError>> + Send + Sync + 'static,
    team: impl Fn() -> String + Send + Sync + 'static,
    success: &'static str,
) -> impl IntoView {
    move || match value() {
        Some(Ok(ev)) => {
            let href = format!("/teams/{}/events/{}/{}", team(), ev.datacenter, ev.event_id);
            view! {
                <div class="alert ok" role="status">
                    {success} " " <a href=href>"Follow its log"</a>
                </div>
            }
            .into_any()
        }
        Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
        None => ().into_any(),
    }
}

/// What a builder found in a source and how it will build and run it.
#[component]
pub fn PlanView(plan: datacenter::api::DetectedPlan) -> impl IntoView {
    view! {
        <div class="plan card" data-language=plan.language.clone()>
            <p class="plan-head">
                <span class="chip">{plan.language.clone()}</span>
                <span class="muted">{plan.reason.clone()}</span>
            </p>
            {(!plan.runnable).then(|| view! {
                <div class="alert error" role="alert">
                    <strong>"This datacenter cannot run it."</strong> " "
                    {plan.message.clone().unwrap_or_default()}
                </div>
            })}
            {(plan.runnable && plan.message.is_some()).then(|| view! {
                <p class="muted">{plan.message.clone().unwrap_or_default()}</p>
            })}
            <dl class="plan-facts">
                <dt>"Build steps"</dt>
                <dd>
                    {if plan.steps.is_empty() {
                        view! { <span class="muted">"none: it runs as it is"</span> }.into_any()
                    } else {
                        view! {
                            <ol class="steps">
                                {plan.steps.iter().map(|s| view! { <li><span class="step-name">{s.name.clone()}</span> <code>{s.command.clone()}</code></li> }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                </dd>
                <dt>"Run command"</dt><dd><code>{plan.run_command.clone()}</code></dd>
                {plan.port.map(|p| view! { <dt>"Listens on"</dt><dd>{format!("port {p} (when it does not read $PORT)")}</dd> })}
                {plan.health_path.clone().map(|h| view! { <dt>"Health check"</dt><dd><code>{h}</code></dd> })}
            </dl>
        </div>
    }
}

/// `1 line`, `2 lines`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Formats a duration in milliseconds as `850 ms`, `12.3 s` or `2 min 05 s`.
pub fn format_duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// A counter that ticks every `secs` seconds in the browser (never on the
/// server), for pages that should follow changing state.
pub fn use_refresh(secs: u64) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_secs(secs),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear()
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = secs;
    tick
}

#[component]
pub fn EmptyState(#[prop(into)] title: String, children: Children) -> impl IntoView {
    view! {
        <div class="empty">
            <p class="empty-title">{title}</p>
            <div class="empty-body">{children()}</div>
        </div>
    }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="muted">"Loading…"</p> }
}

/// Formats unix milliseconds as `YYYY-MM-DD HH:MM UTC` without pulling a
/// date library into the WASM bundle.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_709_210_096_000), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn formats_durations() {
        use super::format_duration;
        assert_eq!(format_duration(850), "850 ms");
        assert_eq!(format_duration(12_345), "12.3 s");
        assert_eq!(format_duration(125_000), "2 min 05 s");
    }
}
