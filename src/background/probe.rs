//! Every few seconds: the queues' depth (gauges) and a `SELECT 1`, which keep `/readyz` current
//! even while no messages flow. Runs on its own connection, never the writer's.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::sink::PgConnection;
use crate::source::SqsSource;
use crate::telemetry::{health, metrics};

pub(crate) async fn probe_loop(
    source: SqsSource,
    dead_letter: Option<SqsSource>,
    mut database: PgConnection,
    every: Duration,
    handle: Option<PrometheusHandle>,
    stop: CancellationToken,
) {
    loop {
        match source.depth().await {
            Ok(depth) => {
                metrics::queue_depth("source", depth.visible, depth.in_flight);
                health().sqs_answered(Ok(()));
            }
            Err(e) => health().sqs_answered(Err(e.to_string())),
        }
        if let Some(dlq) = &dead_letter {
            if let Ok(depth) = dlq.depth().await {
                metrics::queue_depth("dead_letter", depth.visible, depth.in_flight);
            }
        }
        health().postgres_answered(database.ping().await.map_err(|e| e.to_string()));
        metrics::ready(health().ready().is_ok());
        if let Some(handle) = &handle {
            handle.run_upkeep();
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
