//! Task queue benchmark, one backend per run.
//!
//!   cargo run --release -p datacenter --features service --example queue_bench -- \
//!       --backend embedded|etcd [--endpoints http://127.0.0.1:2379] [--tasks 5000] \
//!       [--workers 4] [--producers 2] [--runs 3] [--samples 400] [--payload-bytes 256] [--markdown] [--detail]
//!       [--ack-and-claim]
//!
//! Two phases:
//! - throughput: producers enqueue `--tasks` tasks as fast as they can while `--workers`
//!   workers claim and ack them; tasks/s = tasks / time until the last ack. Repeated
//!   `--runs` times (machines here are shared, so one run can be unlucky): the median counts.
//!   Workers call `claim`, then `ack`; with `--ack-and-claim` they call `claim` once, then
//!   `ack_and_claim` (ack this one, claim the next) for every task.
//! - latency: one producer enqueues `--samples` tasks at a gentle pace (every 5 ms) to idle,
//!   waiting workers; latency = from the start of `enqueue` to `claim` returning the task.
//!   That is the wake-up path, without queueing behind a backlog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datacenter::queue::{EmbeddedQueue, EtcdQueue, NewTask, QueueOptions, TaskQueue};
use serde_json::json;

struct Args {
    backend: String,
    endpoints: Vec<String>,
    tasks: usize,
    workers: usize,
    producers: usize,
    samples: usize,
    runs: usize,
    payload_bytes: usize,
    markdown: bool,
    /// Print how long each kind of call took during the throughput runs.
    detail: bool,
    /// Workers ack a task and claim the next with one `ack_and_claim` call.
    ack_and_claim: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        backend: "embedded".into(),
        endpoints: vec!["http://127.0.0.1:2379".into()],
        tasks: 5000,
        workers: 4,
        producers: 2,
        samples: 400,
        runs: 3,
        payload_bytes: 256,
        markdown: false,
        detail: false,
        ack_and_claim: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--backend" => args.backend = value(),
            "--endpoints" => args.endpoints = value().split(',').map(str::to_owned).collect(),
            "--tasks" => {
                args.tasks = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--tasks: a number"))
            }
            "--workers" => {
                args.workers = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--workers: a number"))
            }
            "--producers" => {
                args.producers = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--producers: a number"))
            }
            "--samples" => {
                args.samples = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--samples: a number"))
            }
            "--runs" => {
                args.runs = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--runs: a number"))
            }
            "--payload-bytes" => {
                args.payload_bytes = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--payload-bytes: a number"))
            }
            "--markdown" => args.markdown = true,
            "--detail" => args.detail = true,
            "--ack-and-claim" => args.ack_and_claim = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if args.workers == 0
        || args.producers == 0
        || args.tasks == 0
        || args.samples == 0
        || args.runs == 0
    {
        usage("counts must be at least 1");
    }
    args
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("queue_bench: {problem}");
    }
    eprintln!(
        "usage: queue_bench --backend embedded|etcd [--endpoints URL[,URL]] [--tasks N] \
         [--workers N] [--producers N] [--runs N] [--samples N] [--payload-bytes N] [--markdown] [--detail] [--ack-and-claim]"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let opts = QueueOptions::default();
    let _dir; // keeps the embedded database alive for the run
    let queue: Arc<dyn TaskQueue> = match args.backend.as_str() {
        "embedded" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let q = EmbeddedQueue::open(&dir.path().join("queue.db"), opts)
                .await
                .expect("open");
            _dir = Some(dir);
            Arc::new(q)
        }
        "etcd" => {
            _dir = None;
            let prefix = format!("/bench/{}-{}", std::process::id(), datacenter_now());
            Arc::new(
                EtcdQueue::connect(&args.endpoints, &prefix, opts)
                    .await
                    .expect("connect etcd"),
            )
        }
        other => usage(&format!("unknown backend {other}")),
    };

    let mut runs = Vec::new();
    let mut calls = Calls::default();
    for run in 0..args.runs {
        let (rate, run_calls) = throughput(&queue, &args, run).await;
        runs.push(rate);
        calls.merge(run_calls);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    let (median, low, high) = (runs[runs.len() / 2], runs[0], runs[runs.len() - 1]);
    let (p50, p99, mean) = latency(&queue, &args).await;

    if args.markdown {
        println!(
            "| {} | {} | {} | {}×{} | {:.0} | {:.0}–{:.0} | {:.2} | {:.2} | {:.2} |",
            args.backend,
            if args.ack_and_claim {
                "ack_and_claim"
            } else {
                "claim, ack"
            },
            args.tasks,
            args.producers,
            args.workers,
            median,
            low,
            high,
            p50,
            p99,
            mean
        );
    } else {
        println!("backend      {}", args.backend);
        if args.ack_and_claim {
            println!("workers      claim once, then ack_and_claim for every task");
        }
        println!(
            "throughput   {median:.0} tasks/s, median of {} runs ({low:.0}–{high:.0}; {} tasks, {} producers, {} workers)",
            args.runs, args.tasks, args.producers, args.workers
        );
        println!(
            "latency      p50 {p50:.2} ms, p99 {p99:.2} ms, mean {mean:.2} ms ({} samples)",
            args.samples
        );
    }
    if args.detail {
        println!("calls during the throughput runs:");
        calls.print(args.ack_and_claim);
    }
}

fn datacenter_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Durations of the calls made during the throughput runs, in milliseconds.
#[derive(Default)]
struct Calls {
    enqueue: Vec<f64>,
    /// Only the claims that returned a task.
    claim: Vec<f64>,
    /// `ack`, or `ack_and_claim` with `--ack-and-claim`.
    ack: Vec<f64>,
}

impl Calls {
    fn merge(&mut self, other: Calls) {
        self.enqueue.extend(other.enqueue);
        self.claim.extend(other.claim);
        self.ack.extend(other.ack);
    }

    fn print(mut self, combined: bool) {
        let ack = if combined { "ack+claim" } else { "ack" };
        for (name, samples) in [
            ("enqueue", &mut self.enqueue),
            ("claim", &mut self.claim),
            (ack, &mut self.ack),
        ] {
            if samples.is_empty() {
                continue;
            }
            let (p50, p99, mean) = summary(samples);
            println!(
                "  {name:<10} p50 {p50:.2} ms, p99 {p99:.2} ms, mean {mean:.2} ms ({} calls)",
                samples.len()
            );
        }
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn throughput(queue: &Arc<dyn TaskQueue>, args: &Args, run: usize) -> (f64, Calls) {
    let topic: &'static str = Box::leak(format!("bench-throughput-{run}").into_boxed_str());
    let filler = "x".repeat(args.payload_bytes);
    let acked = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..args.workers {
        let (queue, acked, total) = (queue.clone(), acked.clone(), args.tasks);
        let combined = args.ack_and_claim;
        handles.push(tokio::spawn(async move {
            let name = format!("bench-{w}");
            let mut calls = Calls::default();
            let (lease, wait) = (Duration::from_secs(30), Duration::from_millis(200));
            let mut held = None;
            while acked.load(Ordering::Relaxed) < total {
                let t = Instant::now();
                let claimed = match held.take() {
                    None => queue.claim(topic, &name, lease, wait).await.expect("claim"),
                    Some(task) if combined => {
                        let next = queue
                            .ack_and_claim(&task, &name, lease, wait)
                            .await
                            .expect("ack and claim");
                        calls.ack.push(ms_since(t));
                        acked.fetch_add(1, Ordering::Relaxed);
                        held = next;
                        continue;
                    }
                    Some(task) => {
                        queue.ack(&task).await.expect("ack");
                        calls.ack.push(ms_since(t));
                        acked.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if let Some(task) = claimed {
                    calls.claim.push(ms_since(t));
                    held = Some(task);
                }
            }
            if let Some(task) = held {
                queue.ack(&task).await.expect("ack");
            }
            calls
        }));
    }
    for p in 0..args.producers {
        let share = args.tasks / args.producers + usize::from(p < args.tasks % args.producers);
        let (queue, filler) = (queue.clone(), filler.clone());
        handles.push(tokio::spawn(async move {
            let mut calls = Calls::default();
            for n in 0..share {
                let task = NewTask::new(json!({ "producer": p, "n": n, "filler": filler }));
                let t = Instant::now();
                queue.enqueue(topic, task).await.expect("enqueue");
                calls.enqueue.push(ms_since(t));
            }
            calls
        }));
    }
    let mut calls = Calls::default();
    for handle in handles {
        calls.merge(handle.await.expect("bench task"));
    }
    (args.tasks as f64 / started.elapsed().as_secs_f64(), calls)
}

/// p50, p99 and mean of `samples` (sorted in place).
fn summary(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (pick(0.50), pick(0.99), mean)
}

async fn latency(queue: &Arc<dyn TaskQueue>, args: &Args) -> (f64, f64, f64) {
    const TOPIC: &str = "bench-latency";
    let base = Instant::now();
    let received = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut workers = Vec::new();
    for w in 0..args.workers {
        let (queue, received, total, tx) =
            (queue.clone(), received.clone(), args.samples, tx.clone());
        workers.push(tokio::spawn(async move {
            let name = format!("lat-{w}");
            while received.load(Ordering::Relaxed) < total {
                let claimed = queue
                    .claim(
                        TOPIC,
                        &name,
                        Duration::from_secs(30),
                        Duration::from_millis(200),
                    )
                    .await
                    .expect("claim");
                if let Some(task) = claimed {
                    let now_us = base.elapsed().as_micros() as f64;
                    let sent_us = task.payload["t0_us"].as_f64().expect("t0");
                    let _ = tx.send((now_us - sent_us) / 1000.0);
                    received.fetch_add(1, Ordering::Relaxed);
                    queue.ack(&task).await.expect("ack");
                }
            }
        }));
    }
    drop(tx);
    // Let the workers settle into waiting before the first sample.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filler = "x".repeat(args.payload_bytes);
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..args.samples {
        pace.tick().await;
        let t0 = base.elapsed().as_micros() as f64;
        queue
            .enqueue(
                TOPIC,
                NewTask::new(json!({ "t0_us": t0, "filler": filler })),
            )
            .await
            .expect("enqueue");
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let mut samples = Vec::new();
    while let Ok(ms) = rx.try_recv() {
        samples.push(ms);
    }
    summary(&mut samples)
}
