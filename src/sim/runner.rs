//! One seed's run: the scenario drawn from the seed (messages, settings, faults), the real
//! `pipeline::run` over the simulated queue and store on a current-thread runtime with tokio's
//! paused clock, crashes (the pipeline future dropped at a drawn time, a fresh one started over
//! the same durable world), an operator's redrive of the dead letters, then faults off and the
//! queue must drain. Log lines are captured for the PII check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::faults::Faults;
use super::queue::SimSource;
use super::shapes::{self, Spec};
use super::store::SimStore;
use super::world::{QueuedMessage, Shared, World};
use crate::mask::Masker;
use crate::pipeline::{self, PipelineError, PipelineSettings};

/// What a seed's run is made of; shrinking removes messages and faults.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub(super) seed: u64,
    pub(super) messages: Vec<Spec>,
    /// When each message is sent, from the start (half at once, the rest during the faults).
    pub(super) delays: Vec<Duration>,
    pub(super) settings: PipelineSettings,
    pub(super) visibility: Duration,
    pub(super) faults: Faults,
    pub(super) redrive: bool,
    /// An operator redriving the dead letters while the faults last (a redrive started early).
    pub(super) early_redrive: Option<Duration>,
    /// Rows are stored under `period_keys::SIM_POLICY` (addresses sealed under a random key per day),
    /// and an operator's `shred` may strike before any write (the fault kind `shred`).
    pub(super) policy: bool,
}

impl Scenario {
    pub(super) fn of(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let messages: Vec<Spec> = (0..rng.gen_range(1..=30))
            .map(|_| shapes::message(&mut rng))
            .collect();
        let settings = PipelineSettings {
            batch_size: rng.gen_range(1..=8),
            batch_max_wait: Duration::from_millis(rng.gen_range(50..=2000)),
            receivers: rng.gen_range(1..=3),
            max_receives: rng.gen_range(2..=4),
            dead_letter_queue: rng.gen_bool(0.8).then(|| "sim://dead-letters".to_string()),
            ..PipelineSettings::default()
        };
        let faults = Faults::draw(&mut rng);
        let window_ms = faults.window.as_millis() as u64;
        let spread = faults.window.as_millis() as u64 / 2;
        let delays = (0..messages.len())
            .map(|_| match rng.gen_bool(0.5) {
                true => Duration::ZERO,
                false => Duration::from_millis(rng.gen_range(0..spread)),
            })
            .collect();
        let mut scenario = Self {
            seed,
            messages,
            delays,
            settings,
            visibility: Duration::from_secs(rng.gen_range(10..=60)),
            faults,
            redrive: rng.gen_bool(0.5),
            early_redrive: (rng.gen_bool(0.25) && early_redrive())
                .then(|| Duration::from_millis(rng.gen_range(0..=window_ms))),
            policy: false,
        };
        // Drawn last, so that every seed's other draws are what they were before policies.
        scenario.policy = rng.gen_bool(0.5);
        if scenario.policy && rng.gen_bool(0.5) {
            scenario.faults.with("shred", rng.gen_range(0.02..0.3));
        }
        scenario
    }
}

/// Whether scenarios may redrive dead letters while the faults last (on unless
/// `SIM_EARLY_REDRIVE=0`).
pub(super) fn early_redrive() -> bool {
    !matches!(std::env::var("SIM_EARLY_REDRIVE").as_deref(), Ok("0"))
}

/// What a run found.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) violations: Vec<String>,
    pub(super) trace: u64,
    pub(super) coverage: std::collections::BTreeMap<String, u64>,
}

/// Run one scenario to its end and check it.
pub(super) fn run(scenario: &Scenario) -> Report {
    crate::retry::seed_jitter(Some(scenario.seed));
    let logs = super::labels::Logs(Arc::new(Mutex::new(Vec::new())));
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let world = Shared::default();
    let labels = super::labels::Labels::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        metrics::with_local_recorder(&labels, || {
            runtime.block_on(simulate(scenario, world.clone()))
        })
    }));
    crate::retry::seed_jitter(None);
    let mut w = world.lock();
    if let Err(panic) = result {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        w.violation(format!("panicked: {}", text.unwrap_or_default()));
    }
    let logs =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let logs = format!("{logs}\n{}", labels.text());
    let sent: Vec<(String, Spec)> = (scenario.messages.iter().enumerate())
        .map(|(i, s)| (format!("m{i}"), s.clone()))
        .collect();
    if w.dump {
        eprintln!("ledger {:?}", w.db.ledger);
        for (k, e) in &w.db.entries {
            eprintln!(
                "entry {k:?}: {} resolved={} attempts={}",
                e.code, e.resolved, e.attempts
            );
        }
        for r in &w.db.rows {
            eprintln!("row {:?} as {}", r.identity, r.landed_as);
        }
    }
    let processed = std::mem::take(&mut w.processed);
    let mut violations = std::mem::take(&mut w.violations);
    violations.extend(super::check::at_end(&w, &sent, &processed, &logs));
    for spec in &scenario.messages {
        w.count(format!("shape.{}", spec.shape));
    }
    let label_count = labels.text().lines().count() as u64;
    *w.coverage
        .entry("checked.metric_labels".into())
        .or_default() += label_count;
    *w.coverage.entry("checked.log_lines".into()).or_default() += logs.lines().count() as u64;
    use std::hash::Hasher;
    Report {
        violations,
        trace: w.trace.finish(),
        coverage: std::mem::take(&mut w.coverage),
    }
}

fn send(w: &mut World, id: String, body: String) {
    let seq = w.next_seq;
    w.next_seq += 1;
    w.processed.insert(id.clone());
    let now = w.queue_now();
    let sent_at =
        chrono::DateTime::from_timestamp(1_796_000_000 + seq as i64, 0).unwrap_or_default();
    w.queue.insert(
        seq,
        QueuedMessage {
            id: crate::message::MessageId(id),
            body,
            sent_at,
            receive_count: 0,
            visible_at: now,
        },
    );
}

async fn simulate(scenario: &Scenario, world: Shared) {
    let t0 = Instant::now();
    {
        let mut w = world.lock();
        w.rng = Some(StdRng::seed_from_u64(scenario.seed ^ 0x005e_ed0f_5111));
        w.faults = scenario.faults.clone();
        w.faults_on = true;
        w.t0 = Some(t0);
        w.dump = std::env::var_os("SIM_DUMP").is_some();
        w.visibility = scenario.visibility;
        let s = &scenario.settings;
        w.held_bound = 3 * s.batch_size + 1 + 10 * s.receivers;
        w.crash_ops = scenario.faults.crash_ops.iter().copied().collect();
    }
    let mut sends: Vec<(Duration, usize)> = scenario.delays.iter().copied().zip(0..).collect();
    sends.sort();
    let producer = world.clone();
    let bodies: Vec<String> = scenario.messages.iter().map(|s| s.body.clone()).collect();
    tokio::spawn(async move {
        for (delay, i) in sends {
            tokio::time::sleep_until(t0 + delay).await;
            send(&mut producer.lock(), format!("m{i}"), bodies[i].clone());
        }
    });
    if let Some(at) = scenario.early_redrive {
        let operator = world.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(t0 + at).await;
            let mut w = operator.lock();
            w.count("early_redrive".into());
            for (id, body) in std::mem::take(&mut w.dead_letters) {
                send(&mut w, id, body);
            }
        });
    }
    let mut crashes: Vec<Duration> = scenario.faults.crashes.clone();
    crashes.reverse();
    let fault_end = t0 + scenario.faults.window;
    let mut redriven = !scenario.redrive;
    loop {
        let hard_end = Instant::now().max(fault_end) + Duration::from_secs(3 * 3600);
        let done = incarnation(
            scenario,
            &world,
            &super::period_keys::masker(scenario.policy),
            crashes.pop().map(|c| t0 + c),
            fault_end,
            hard_end,
        )
        .await;
        if !done {
            continue;
        }
        let mut w = world.lock();
        if redriven || w.dead_letters.is_empty() || !w.violations.is_empty() {
            return;
        }
        // An operator redrives the dead letters (each carries its original id), faults back on.
        redriven = true;
        w.count("redrive".into());
        for (id, body) in std::mem::take(&mut w.dead_letters) {
            send(&mut w, id, body);
        }
        w.faults_on = true;
    }
}

/// One incarnation of the process, until it crashes (`false`), ends with an error (`false`), or
/// the queue drained with faults off (`true`).
async fn incarnation(
    scenario: &Scenario,
    world: &Shared,
    masker: &Masker,
    crash_at: Option<Instant>,
    fault_end: Instant,
    hard_end: Instant,
) -> bool {
    {
        let mut w = world.lock();
        w.incarnation += 1;
        w.alive = true;
        w.dying = false;
        let line = format!("start {}", w.incarnation);
        w.event(&line);
    }
    let shutdown = CancellationToken::new();
    let source = SimSource {
        world: world.clone(),
        dead_letter: false,
    };
    let store = SimStore {
        world: world.clone(),
    };
    let watcher = tokio::spawn(watch(world.clone(), shutdown.clone(), fault_end, hard_end));
    let pipeline = pipeline::run(
        source,
        store,
        masker.clone(),
        scenario.settings.clone(),
        shutdown.clone(),
    );
    let crash_now = world.lock().crash_now.clone();
    let crash = async {
        let at = async {
            match crash_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = crash_now.notified() => return,
            () = at => {}
        }
        match crash_at {
            Some(at) => {
                let _ = at;
                let mut w = world.lock();
                let busy: Vec<&str> = (w.in_progress.iter())
                    .filter(|(k, n)| **n > 0 && **k != "receive")
                    .map(|(k, _)| *k)
                    .collect();
                let point = if busy.is_empty() {
                    "idle".to_string()
                } else {
                    busy.join("+")
                };
                w.count(format!("crash.during.{point}"));
                w.event(&format!("crash during {point}"));
            }
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        biased;
        result = pipeline => Some(result),
        () = crash => None,
    };
    watcher.abort();
    let exited = {
        let mut w = world.lock();
        w.alive = false;
        w.in_progress.clear();
        match ended {
            None => return false,
            Some(Ok(_)) => {
                w.event("drained");
                return true;
            }
            Some(Err(PipelineError::Panicked { task })) => {
                w.violation(format!("a {task} task panicked"));
                return true;
            }
            Some(Err(PipelineError::Sink(_))) => "exit.sink_error",
            Some(Err(_)) => "exit.source_error",
        }
    };
    {
        let mut w = world.lock();
        w.count(exited.into());
        w.event(exited);
    }
    // Restarted a second later, as a supervisor would.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Instant::now() >= hard_end
}

/// Faults off at `fault_end`; shut down once the queue is empty with faults off, or at
/// `hard_end` with a liveness violation.
async fn watch(world: Shared, shutdown: CancellationToken, fault_end: Instant, hard_end: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut w = world.lock();
        let now = Instant::now();
        let since = now - w.t0.unwrap_or(now);
        if let Some((at, jump)) = w
            .faults
            .clock_jump
            .filter(|(at, _)| w.faults_on && since >= *at)
        {
            // The queue's clock jumps ahead: deliveries expire early, through no fault of the process.
            w.skew += jump;
            w.faults.clock_jump = None;
            w.count("fault.clock_jump".into());
            w.event(&format!("clock jump {at:?} {jump:?}"));
            for r in w.receipts.values_mut() {
                r.excused = true;
            }
        }
        if now >= fault_end && w.faults_on {
            w.faults_on = false;
            w.event("faults off");
        }
        if !w.faults_on && w.undeleted() == 0 {
            shutdown.cancel();
            return;
        }
        if now >= hard_end {
            let left = w.undeleted();
            w.violation(format!(
                "liveness: {left} messages still in the queue 3 h after faults stopped"
            ));
            shutdown.cancel();
            return;
        }
    }
}
