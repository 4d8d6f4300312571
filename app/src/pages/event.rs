use crate::api::team_event;
use crate::components::{format_time, ErrorBox, Loading};
use crate::progress::{phases, PhaseState};
use datacenter::api::{Level, LogLine};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn EventPage() -> impl IntoView {
    let params = use_params_map();
    let p = move |k: &str| params.read().get(k).unwrap_or_default();
    let event = Resource::new(
        move || (p("team"), p("datacenter"), p("id")),
        |(t, d, i)| team_event(t, d, i),
    );
    view! {
        <Title text="Event · Cloudport"/>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match event.await {
                    Ok(ev) => {
                        let team = p("team");
                        let dc = p("datacenter");
                        let e = ev.event.clone();
                        view! {
                            <p class="crumbs">
                                <a href=format!("/teams/{team}")>{team.clone()}</a>" / "
                                <a href=format!("/teams/{team}/apps/{}", e.app)>{e.app.clone()}</a>" / "
                                <a href=format!("/teams/{team}/apps/{}/components/{}", e.app, e.component)>{e.component.clone()}</a>
                            </p>
                            <h1><code>{e.action.as_str()}</code> " " {e.component.clone()}</h1>
                            <p class="muted">"By " {e.actor.clone()} " on " {format_time(e.created_at)} " in datacenter " {dc.clone()}</p>
                            <LiveLog team dc event=e.id.clone() action=e.action.as_str().to_string() initial=ev.lines status=e.status.as_str().to_string()/>
                        }.into_any()
                    }
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// An event's log: the stored lines at once, then live lines over the
/// console's WebSocket until the event closes.
#[component]
fn LiveLog(
    team: String,
    dc: String,
    event: String,
    action: String,
    initial: Vec<LogLine>,
    status: String,
) -> impl IntoView {
    // Step changes, kept apart from the lines: the view drops old lines of
    // a chatty build, the progress must still know it fetched.
    let mut steps = Vec::new();
    initial.iter().for_each(|l| note_step(&mut steps, &l.step));
    let view_state = LogState {
        lines: RwSignal::new(initial),
        steps: RwSignal::new(steps),
        status: RwSignal::new(status),
        skipped: RwSignal::new(0u64),
        problem: RwSignal::new(None::<String>),
    };
    let LogState {
        lines,
        steps,
        status,
        skipped,
        problem,
    } = view_state;
    #[cfg(feature = "hydrate")]
    live::connect(team, dc, event, view_state);
    #[cfg(not(feature = "hydrate"))]
    let _ = (team, dc, event);
    let progress = move || {
        steps.with(|steps| phases(&action, steps.iter().map(String::as_str), &status.get()))
    };
    view! {
        {move || {
            let list = progress();
            (!list.is_empty()).then(|| view! {
                <ol class="progress" aria-label="Progress">
                    {list.into_iter().map(|p| {
                        let mark = match p.state {
                            PhaseState::Done => "✓",
                            PhaseState::Failed => "✕",
                            PhaseState::Current => "●",
                            PhaseState::Skipped => "–",
                            PhaseState::Pending => "○",
                        };
                        view! {
                            <li class=format!("phase {}", p.state.as_str()) title=p.state.as_str()
                                aria-current=(p.state == PhaseState::Current).then_some("step")>
                                <span class="mark" aria-hidden="true">{mark}</span>{p.name}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            })
        }}
        <div class="log-head">
            <span class=move || format!("result event-{}", status.get())>{move || status.get()}</span>
            {move || (skipped.get() > 0).then(|| view! { <span class="muted">{format!("{} lines skipped (too fast to show)", skipped.get())}</span> })}
            {move || problem.get().map(|p| view! { <span class="error-text">{p}</span> })}
        </div>
        <div class="log" role="log" aria-live="polite">
            {move || lines.get().into_iter().map(|l| {
                let level = match l.level { Level::Debug => "debug", Level::Info => "info", Level::Warn => "warn", Level::Error => "error" };
                view! {
                    <div class=format!("line level-{level}")>
                        <span class="seq">{l.seq}</span>
                        <span class="step">{l.step.clone()}</span>
                        <span class="msg">{l.message.clone()}</span>
                    </div>
                }
            }).collect_view()}
        </div>
    }
}

/// What the log view shows, updated by the live stream.
#[derive(Clone, Copy)]
struct LogState {
    lines: RwSignal<Vec<LogLine>>,
    steps: RwSignal<Vec<String>>,
    status: RwSignal<String>,
    skipped: RwSignal<u64>,
    problem: RwSignal<Option<String>>,
}

/// Records a line's step when it differs from the one before.
fn note_step(steps: &mut Vec<String>, step: &str) {
    if steps.last().is_none_or(|s| s != step) {
        steps.push(step.to_string());
    }
}

#[cfg(feature = "hydrate")]
mod live {
    /// Lines kept on screen; older ones scroll away so a chatty log cannot freeze the page.
    const MAX_LINES: usize = 2000;
    use datacenter::api::StreamMessage;
    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    pub(super) fn connect(team: String, dc: String, event: String, state: super::LogState) {
        let super::LogState {
            lines,
            steps,
            status,
            skipped,
            problem,
        } = state;
        if matches!(status.get_untracked().as_str(), "succeeded" | "failed") {
            return;
        }
        let Some(window) = web_sys::window() else {
            return;
        };
        let loc = window.location();
        let proto = if loc.protocol().ok().as_deref() == Some("https:") {
            "wss"
        } else {
            "ws"
        };
        let url = format!("{proto}://{}/api/v1/ws", loc.host().unwrap_or_default());
        let Ok(ws) = web_sys::WebSocket::new(&url) else {
            problem.set(Some("live updates unavailable".into()));
            return;
        };
        let sub =
            serde_json::json!({"op": "subscribe", "team": team, "datacenter": dc, "event": event})
                .to_string();
        let opened = ws.clone();
        let onopen = Closure::<dyn FnMut()>::new(move || {
            let _ = opened.send_with_str(&sub);
        });
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        onopen.forget();
        let onmessage =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let Some(text) = e.data().as_string() else {
                    return;
                };
                match serde_json::from_str::<StreamMessage>(&text) {
                    Ok(StreamMessage::Line { line, .. }) => lines.update(|v| {
                        if v.last().is_none_or(|l| line.seq > l.seq) {
                            steps.update(|s| super::note_step(s, &line.step));
                            v.push(line);
                            if v.len() > MAX_LINES {
                                let extra = v.len() - MAX_LINES;
                                v.drain(..extra);
                            }
                        }
                    }),
                    Ok(StreamMessage::Skipped { count, .. }) => skipped.update(|s| *s += count),
                    Ok(StreamMessage::Closed { status: s, .. }) => status.set(s),
                    Ok(StreamMessage::Error { message, .. }) => problem.set(Some(message)),
                    Ok(StreamMessage::Metrics { .. }) | Err(_) => {}
                }
            });
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();
        on_cleanup(move || {
            let _ = ws.close();
        });
    }
}
