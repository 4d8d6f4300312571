//! A component's output in the browser: live over the console's WebSocket,
//! kept to the newest [`MAX_LINES`] lines and drawn virtually (only the rows
//! in view exist in the page), so a chatty app never freezes the browser.
//! Incoming lines are batched and drawn a few times a second; Pause holds
//! the view still while lines keep arriving; a filter narrows the kept
//! lines, and "Search stored logs" asks the datacenter's stored output.

use crate::api::SearchLogs;
use crate::components::{count, ErrorBox};
use datacenter::api::{Level, LogLine};
use leptos::prelude::*;

/// Lines kept in the page; older ones are let go (and counted).
pub const MAX_LINES: usize = 10_000;
/// Height of one row in pixels: `.vlog .row` in the style sheet must match.
const ROW_PX: f64 = 20.0;
/// Rows drawn above and below the visible ones, for smooth scrolling.
const OVERSCAN: usize = 12;
/// How often arrived lines are drawn.
#[cfg(feature = "hydrate")]
const FLUSH_MS: u64 = 250;

/// The state of the live connection.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum Link {
    Connecting,
    Live,
    /// Lost; reconnecting.
    Lost(String),
    /// Refused for good (no such component, not allowed).
    Refused(String),
}

#[component]
pub fn LogsPanel(team: String, app: String, name: String, datacenter: String) -> impl IntoView {
    let lines = RwSignal::new(Vec::<LogLine>::new());
    let skipped = RwSignal::new(0u64);
    let dropped = RwSignal::new(0u64);
    let paused = RwSignal::new(false);
    let waiting = RwSignal::new(0usize);
    let link = RwSignal::new(Link::Connecting);
    let filter = RwSignal::new(String::new());
    let follow = RwSignal::new(true);

    #[cfg(feature = "hydrate")]
    live::connect(live::Feed {
        team: team.clone(),
        component: format!("{app}/{name}"),
        datacenter,
        lines,
        skipped,
        dropped,
        paused,
        waiting,
        link,
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = datacenter;

    let search = ServerAction::<SearchLogs>::new();
    let found = RwSignal::new(Vec::<LogLine>::new());
    let searched = RwSignal::new(None::<(String, bool)>);
    Effect::new(move |_| {
        if let Some(Ok(page)) = search.value().get() {
            found.set(page.lines);
            searched.update(|s| {
                if let Some(s) = s {
                    s.1 = page.truncated;
                }
            });
        }
    });
    let ask_stored = move |_| {
        let q = filter.get_untracked();
        searched.set(Some((q.clone(), false)));
        search.dispatch(SearchLogs {
            team: team.clone(),
            app: app.clone(),
            name: name.clone(),
            q,
        });
    };
    let no_follow = RwSignal::new(false);

    view! {
        <div class="log-toolbar">
            <button type="button" class="pause" on:click=move |_| paused.update(|p| *p = !*p)>
                {move || if paused.get() { "Resume" } else { "Pause" }}
            </button>
            <input type="search" class="log-filter" placeholder="Filter the lines below" aria-label="Filter lines"
                prop:value=move || filter.get() on:input=move |ev| filter.set(event_target_value(&ev))/>
            <button type="button" on:click=ask_stored title="Search everything the datacenter kept of this component's output">"Search stored logs"</button>
            <span class=move || match link.get() { Link::Live => "link-state live", Link::Connecting => "link-state", _ => "link-state lost" }>
                {move || match link.get() {
                    Link::Connecting => "connecting…".to_string(),
                    Link::Live => "live".to_string(),
                    Link::Lost(why) => format!("reconnecting: {why}"),
                    Link::Refused(why) => why,
                }}
            </span>
        </div>
        <div class="log-notices">
            {move || (skipped.get() > 0).then(|| view! {
                <span class="notice skipped" role="status">{format!("{} skipped (they came faster than this page could take them)", count(skipped.get(), "line", "lines"))}</span>
            })}
            {move || (dropped.get() > 0).then(|| view! {
                <span class="notice muted">{format!("Showing the newest {MAX_LINES} lines; {} let go.", count(dropped.get(), "older one was", "older ones were"))}</span>
            })}
            {move || (paused.get()).then(|| view! {
                <span class="notice muted">{format!("Paused: {} waiting.", count(waiting.get() as u64, "new line", "new lines"))}</span>
            })}
        </div>
        <VirtualLog lines filter=filter follow empty="No output yet. Lines appear here as the component writes them."/>
        {move || searched.get().map(|(q, truncated)| {
            let title = if q.is_empty() { "Stored output".to_string() } else { format!("Stored lines containing “{q}”") };
            view! {
                <div class="stored-head">
                    <h3>{title}</h3>
                    {move || search.pending().get().then(|| view! { <span class="muted">"Searching…"</span> })}
                    {move || (!search.pending().get()).then(|| view! { <span class="muted">{format!("{}{}", count(found.with(Vec::len) as u64, "line", "lines"), if truncated { ", the newest of more matches" } else { "" })}</span> })}
                    <button type="button" class="link-button" on:click=move |_| { searched.set(None); found.set(vec![]); }>"Close"</button>
                </div>
                {move || match search.value().get() {
                    Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                    _ => ().into_any(),
                }}
                <VirtualLog lines=found filter=Signal::stored(String::new()) follow=no_follow fit=true empty="Nothing stored matches."/>
            }
        })}
    }
}

/// Renders only the rows in view out of `lines` (those containing `filter`,
/// when it is set), inside a scroll box as tall as all of them.
#[component]
pub fn VirtualLog(
    lines: RwSignal<Vec<LogLine>>,
    #[prop(into)] filter: Signal<String>,
    /// Keep the newest line in view; cleared while the reader scrolls up.
    follow: RwSignal<bool>,
    empty: &'static str,
    /// As tall as its lines, up to the usual height.
    #[prop(optional)]
    fit: bool,
) -> impl IntoView {
    let scroll_top = RwSignal::new(0.0f64);
    let height = RwSignal::new(480.0f64);
    let boxed = NodeRef::<leptos::html::Div>::new();
    // Positions of the kept lines that pass the filter; `None` without one.
    // Lower-case filters ignore case; any capital makes it exact.
    let matches = Memo::new(move |_| {
        let f = filter.get();
        if f.is_empty() {
            return None;
        }
        let fold = !f.chars().any(char::is_uppercase);
        Some(lines.with(|all| {
            all.iter()
                .enumerate()
                .filter(|(_, l)| {
                    if fold {
                        l.message.to_lowercase().contains(&f) || l.step.to_lowercase().contains(&f)
                    } else {
                        l.message.contains(&f) || l.step.contains(&f)
                    }
                })
                .map(|(i, _)| i as u32)
                .collect::<Vec<_>>()
        }))
    });
    let total = move || {
        matches
            .with(|m| m.as_ref().map(Vec::len))
            .unwrap_or_else(|| lines.with(Vec::len))
    };
    let window = move || {
        let n = total();
        let first = ((scroll_top.get() / ROW_PX).floor() as usize).saturating_sub(OVERSCAN);
        let shown = (height.get() / ROW_PX).ceil() as usize + 2 * OVERSCAN;
        let last = (first + shown).min(n);
        (first.min(last), last)
    };
    let rows = move || {
        let (first, last) = window();
        lines.with(|all| {
            matches.with(|m| {
                (first..last)
                    .filter_map(|pos| {
                        let i = match m {
                            Some(v) => *v.get(pos)? as usize,
                            None => pos,
                        };
                        all.get(i).cloned()
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    let on_scroll = move |_: leptos::ev::Event| {
        #[cfg(not(feature = "hydrate"))]
        let _ = follow;
        #[cfg(feature = "hydrate")]
        if let Some(el) = boxed.get_untracked() {
            let top = el.scroll_top() as f64;
            let seen = el.client_height() as f64;
            scroll_top.set(top);
            height.set(seen.max(ROW_PX));
            follow.set(top + seen >= el.scroll_height() as f64 - ROW_PX * 1.5);
        }
    };
    // Keeps the newest line in view while following.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let n = total();
        if follow.get_untracked() && n > 0 {
            if let Some(el) = boxed.get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });
    view! {
        <div class=if fit { "vlog fit" } else { "vlog" } node_ref=boxed role="log" tabindex="0" on:scroll=on_scroll>
            <div class="vlog-space" style:height=move || format!("{}px", total() as f64 * ROW_PX)>
                <div class="vlog-rows" style:transform=move || format!("translateY({}px)", window().0 as f64 * ROW_PX)>
                    {move || rows().into_iter().map(|l| {
                        let level = match l.level { Level::Debug => "debug", Level::Info => "info", Level::Warn => "warn", Level::Error => "error" };
                        view! {
                            <div class=format!("row level-{level}")>
                                <span class="time">{clock(l.time)}</span>
                                <span class="step">{l.step}</span>
                                <span class="msg">{l.message}</span>
                            </div>
                        }
                    }).collect_view()}
                </div>
            </div>
            {move || (total() == 0).then(|| view! {
                <p class="vlog-empty">{if filter.with(String::is_empty) { empty } else { "No kept line matches the filter. Try “Search stored logs”." }}</p>
            })}
        </div>
    }
}

/// `HH:MM:SS` (UTC) of unix milliseconds.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

#[cfg(feature = "hydrate")]
mod live {
    use super::{Link, FLUSH_MS, MAX_LINES};
    use datacenter::api::{LogLine, StreamMessage};
    use leptos::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    #[derive(Clone)]
    pub struct Feed {
        pub team: String,
        pub component: String,
        pub datacenter: String,
        pub lines: RwSignal<Vec<LogLine>>,
        pub skipped: RwSignal<u64>,
        pub dropped: RwSignal<u64>,
        pub paused: RwSignal<bool>,
        pub waiting: RwSignal<usize>,
        pub link: RwSignal<Link>,
    }

    /// What the socket callbacks share; plain (non-reactive) so arriving
    /// lines cost no rendering until they are flushed.
    #[derive(Default)]
    struct Inbox {
        pending: Vec<LogLine>,
        last_seq: i64,
        /// Set on every new connection: its history may repeat lines.
        fresh: bool,
        let_go: u64,
    }

    pub fn connect(feed: Feed) {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let gone = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(Mutex::new(None::<web_sys::WebSocket>));

        // Draws what arrived, a few times a second, unless paused.
        let flush = {
            let inbox = inbox.clone();
            let feed = feed.clone();
            move || {
                let mut inbox = inbox.lock().unwrap();
                if inbox.let_go > 0 {
                    let n = std::mem::take(&mut inbox.let_go);
                    feed.dropped.update(|d| *d += n);
                }
                if feed.paused.get_untracked() {
                    if feed.waiting.get_untracked() != inbox.pending.len() {
                        feed.waiting.set(inbox.pending.len());
                    }
                    return;
                }
                if inbox.pending.is_empty() {
                    return;
                }
                let batch = std::mem::take(&mut inbox.pending);
                drop(inbox);
                let mut trimmed = 0;
                feed.lines.update(|v| {
                    v.extend(batch);
                    if v.len() > MAX_LINES {
                        trimmed = v.len() - MAX_LINES;
                        v.drain(..trimmed);
                    }
                });
                if trimmed > 0 {
                    feed.dropped.update(|d| *d += trimmed as u64);
                }
                feed.waiting.set(0);
            }
        };
        let timer = set_interval_with_handle(flush, Duration::from_millis(FLUSH_MS)).ok();

        open(feed, inbox, gone.clone(), socket.clone());

        on_cleanup(move || {
            gone.store(true, Ordering::Relaxed);
            if let Some(t) = timer {
                t.clear();
            }
            if let Some(ws) = socket.lock().unwrap().take() {
                ws.set_onmessage(None);
                ws.set_onclose(None);
                ws.set_onopen(None);
                let _ = ws.close();
            }
        });
    }

    fn open(
        feed: Feed,
        inbox: Arc<Mutex<Inbox>>,
        gone: Arc<AtomicBool>,
        socket: Arc<Mutex<Option<web_sys::WebSocket>>>,
    ) {
        if gone.load(Ordering::Relaxed) {
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
            feed.link
                .set(Link::Refused("live output unavailable".into()));
            return;
        };
        inbox.lock().unwrap().fresh = true;
        let refused = Arc::new(AtomicBool::new(false));

        let sub = serde_json::json!({
            "op": "subscribe",
            "team": feed.team,
            "datacenter": feed.datacenter,
            "component": feed.component,
        })
        .to_string();
        let opened = ws.clone();
        let link = feed.link;
        let onopen = Closure::<dyn FnMut()>::new(move || {
            let _ = opened.send_with_str(&sub);
            link.set(Link::Live);
        });
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        onopen.forget();

        let onmessage = {
            let inbox = inbox.clone();
            let feed = feed.clone();
            let refused = refused.clone();
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let Some(text) = e.data().as_string() else {
                    return;
                };
                match serde_json::from_str::<StreamMessage>(&text) {
                    Ok(StreamMessage::Line { line, .. }) => {
                        let mut inbox = inbox.lock().unwrap();
                        if inbox.fresh {
                            inbox.fresh = false;
                            // The stream started over (the datacenter restarted).
                            if line.seq + 1000 < inbox.last_seq {
                                inbox.last_seq = 0;
                            }
                        }
                        if line.seq <= inbox.last_seq {
                            return;
                        }
                        inbox.last_seq = line.seq;
                        inbox.pending.push(line);
                        // Bounded while paused too: the oldest waiting lines go.
                        if inbox.pending.len() > MAX_LINES + MAX_LINES / 10 {
                            let extra = inbox.pending.len() - MAX_LINES;
                            inbox.pending.drain(..extra);
                            inbox.let_go += extra as u64;
                        }
                    }
                    Ok(StreamMessage::Skipped { count, .. }) => {
                        feed.skipped.update(|s| *s += count)
                    }
                    Ok(StreamMessage::Error { message, .. }) => {
                        refused.store(true, Ordering::Relaxed);
                        feed.link.set(Link::Refused(message));
                    }
                    Ok(StreamMessage::Closed { status, .. }) => {
                        feed.link.set(Link::Refused(format!("ended ({status})")));
                    }
                    Ok(StreamMessage::Metrics { .. }) | Err(_) => {}
                }
            })
        };
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();

        let onclose = {
            let feed = feed.clone();
            let gone = gone.clone();
            let socket = socket.clone();
            Closure::<dyn FnMut()>::new(move || {
                if gone.load(Ordering::Relaxed) || refused.load(Ordering::Relaxed) {
                    return;
                }
                feed.link.set(Link::Lost("the connection dropped".into()));
                let (feed, inbox, gone, socket) =
                    (feed.clone(), inbox.clone(), gone.clone(), socket.clone());
                set_timeout(
                    move || open(feed, inbox, gone, socket),
                    Duration::from_secs(3),
                );
            })
        };
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        onclose.forget();

        *socket.lock().unwrap() = Some(ws);
    }
}
