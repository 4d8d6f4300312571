//! Stream fan-out: one event channel followed by N WebSocket subscribers of a
//! real datacenter (`/v1/stream`), M lines published into it. Two runs:
//! `paced` keeps the publisher at most half a ring ahead of the slowest
//! subscriber (the lossless rate: every subscriber gets every line), `burst`
//! publishes as fast as it can (slow subscribers are told what they missed).
//! Reports lines delivered per second across all subscribers.
//!
//!   cargo run --release -p datacenter --features service,client --example fanout_bench -- [subscribers] [lines]

use datacenter::api::{Level, LogLine, StreamMessage};
use datacenter::client::DatacenterClient;
use datacenter::logs::hub::HubMessage;
use datacenter::service::{start, DatacenterConfig};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let subscribers = *args.first().unwrap_or(&100) as usize;
    let lines = *args.get(1).unwrap_or(&20_000) as i64;
    println!("| mode | subscribers × lines | delivered lines/s | time | delivered / skipped |");
    println!("|---|---|---|---|---|");
    run(subscribers, lines, true).await;
    run(subscribers, lines, false).await;
}

async fn run(subscribers: usize, lines: i64, paced: bool) {
    let dir = tempfile::tempdir().unwrap();
    let token = "bench-token-0123456789";
    let config = DatacenterConfig {
        workers: 1,
        reconcile_every: Duration::from_secs(3600),
        ..DatacenterConfig::new(
            "bench",
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_path_buf(),
            token.into(),
        )
    };
    let running = start(config).await.unwrap();
    let dc = running.datacenter.clone();
    let client = DatacenterClient::new(
        &format!("http://{}", running.addr),
        token,
        Duration::from_secs(30),
    );
    // A real, still-running event to follow.
    let spec =
        serde_json::from_value(serde_json::json!({"name": "bench", "source": {"kind": "upload"}}))
            .unwrap();
    let created = client
        .create_component("bench", "bench", &spec, "bench")
        .await
        .unwrap();
    let event = dc.events.get(&created.event_id).await.unwrap();
    while !dc.events.get(&event.id).await.unwrap().status.is_final() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dc.events
        .set_status(&event.id, datacenter::api::EventStatus::Running, None)
        .await
        .unwrap();
    let channel = format!("event:{}", event.id);
    let history = dc.events.last_seq(&event.id).await.unwrap();

    let mut rxs = vec![];
    for _ in 0..subscribers {
        rxs.push(client.follow(&channel, 1024).await.unwrap());
    }
    // Let every subscription finish replaying history and attach live.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let progress: Vec<Arc<AtomicI64>> = (0..subscribers)
        .map(|_| Arc::new(AtomicI64::new(history)))
        .collect();
    let consumers: Vec<_> = rxs
        .into_iter()
        .zip(progress.clone())
        .map(|(mut rx, seen)| {
            tokio::spawn(async move {
                let (mut got, mut skipped) = (0u64, 0u64);
                while let Some(msg) = rx.recv().await {
                    match msg {
                        StreamMessage::Line { line, .. } => {
                            got += 1;
                            seen.store(line.seq, Ordering::Relaxed);
                        }
                        StreamMessage::Skipped { count, .. } => skipped += count,
                        StreamMessage::Closed { .. } => break,
                        StreamMessage::Error { message, .. } => panic!("{message}"),
                        StreamMessage::Metrics { .. } => {}
                    }
                }
                (got, skipped)
            })
        })
        .collect();

    let started = Instant::now();
    for seq in 1..=lines {
        if paced {
            let ring_half = (datacenter::logs::hub::CHANNEL_CAPACITY / 2) as i64;
            while history + seq
                - progress
                    .iter()
                    .map(|p| p.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0)
                > ring_half
            {
                tokio::task::yield_now().await;
            }
        }
        let line = LogLine {
            seq: history + seq,
            time: 0,
            level: Level::Info,
            step: "bench".into(),
            message: format!("line {seq} of the fan-out benchmark"),
        };
        dc.hub.publish(&channel, HubMessage::Line(Arc::new(line)));
        if seq % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    dc.hub.close(&channel, "succeeded");
    let (mut delivered, mut skipped) = (0u64, 0u64);
    for c in consumers {
        let (g, s) = c.await.unwrap();
        delivered += g;
        skipped += s;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| {} | {subscribers} × {lines} | {:.0} | {:.2} s | {delivered} / {skipped} ({:.1} % skipped) |",
        if paced { "paced (lossless)" } else { "burst" },
        delivered as f64 / secs,
        secs,
        100.0 * skipped as f64 / (subscribers as f64 * lines as f64)
    );
}
