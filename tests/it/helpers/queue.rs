//! A fresh queue per test, and draining it in-process.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use login_etl::pipeline::{self, PipelineSettings, Summary};
use login_etl::source::{MessageId, SqsSettings, SqsSource};
use tokio_util::sync::CancellationToken;

use super::{
    masker, query_only_sqs_endpoint, require_endpoint, require_stack, sqs_endpoint, unique, TestDb,
};

/// A queue of its own with a given visibility timeout, deleted at the end of the test.
pub(crate) struct TestQueue {
    pub name: String,
    pub source: SqsSource,
    /// The SQS endpoint it lives on.
    pub endpoint: String,
}

impl TestQueue {
    /// A queue on the current LocalStack (JSON protocol).
    pub(crate) async fn new(visibility_timeout_secs: u32) -> Self {
        require_stack();
        Self::at(&sqs_endpoint(), visibility_timeout_secs).await
    }

    /// A queue on an SQS that speaks only the query protocol (see `query_only_sqs_endpoint`),
    /// reached with the default `--sqs-protocol auto`.
    pub(crate) async fn query_only(visibility_timeout_secs: u32) -> Self {
        require_stack();
        let endpoint = query_only_sqs_endpoint();
        require_endpoint(&endpoint, "a query-only SQS (LocalStack 1.4)");
        Self::at(&endpoint, visibility_timeout_secs).await
    }

    /// A queue that already exists (made by a CloudFormation stack), deleted at the end too.
    pub(crate) async fn adopt(endpoint: &str, name: &str) -> Self {
        let settings = Self::settings_for(endpoint, name);
        Self {
            name: name.to_string(),
            source: SqsSource::connect(&settings).await.unwrap(),
            endpoint: endpoint.to_string(),
        }
    }

    /// A FIFO queue on the current LocalStack.
    pub(crate) async fn fifo() -> Self {
        require_stack();
        Self::create(&sqs_endpoint(), 30, true).await
    }

    /// A queue on the given endpoint.
    pub(crate) async fn at(endpoint: &str, visibility_timeout_secs: u32) -> Self {
        Self::create(endpoint, visibility_timeout_secs, false).await
    }

    async fn create(endpoint: &str, visibility_timeout_secs: u32, fifo: bool) -> Self {
        let mut name = unique("login-etl-test").replace('_', "-");
        if fifo {
            name.push_str(".fifo");
        }
        let settings = Self::settings_for(endpoint, &name);
        let mut create = login_etl::source::sqs::client(&settings)
            .await
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            );
        if fifo {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        create
            .send()
            .await
            .expect("the SQS emulator is not reachable: run scripts/test.sh, which starts it");
        let source = SqsSource::connect(&settings).await.unwrap();
        Self {
            name,
            source,
            endpoint: endpoint.to_string(),
        }
    }

    fn settings_for(endpoint: &str, name: &str) -> SqsSettings {
        SqsSettings {
            endpoint: Some(endpoint.parse().unwrap()),
            region: Some("us-east-1".into()),
            queue_url: None,
            queue_name: name.into(),
            protocol: Default::default(),
            s3_endpoint: None,
        }
    }

    pub(crate) fn settings(&self) -> SqsSettings {
        Self::settings_for(&self.endpoint, &self.name)
    }

    pub(crate) async fn send(&self, bodies: &[String]) -> Vec<MessageId> {
        self.source.send(bodies).await.unwrap()
    }

    /// Until no message is in flight: what a dead or killed consumer held is visible again
    /// (its visibility timeout ran out), whatever the time that took on this machine.
    pub(crate) async fn until_none_in_flight(&self) {
        super::wait_until("no message in flight", Duration::from_secs(120), || async {
            self.source.depth().await.unwrap().in_flight == 0
        })
        .await;
    }

    /// Visible + in flight.
    pub(crate) async fn remaining(&self) -> u64 {
        let depth = self.source.depth().await.unwrap();
        depth.visible + depth.in_flight
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let settings = self.settings();
        let url = self.source.queue_url().to_string();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = login_etl::source::sqs::client(&settings).await;
                let _ = client.delete_queue().queue_url(url).send().await;
            })
        })
        .join();
    }
}

/// Drain settings that keep tests quick.
pub(crate) fn drain_settings() -> PipelineSettings {
    PipelineSettings {
        batch_size: 50,
        batch_max_wait: Duration::from_millis(200),
        receivers: 2,
        wait_time: Duration::from_secs(1),
        drain_idle: Some(Duration::from_secs(1)),
        max_receives: 5,
        write_retry_timeout: Duration::from_secs(5),
        dead_letter_queue: None,
        progress_bar: false,
        ..PipelineSettings::default()
    }
}

/// Drain `queue` into `db` in-process.
pub(crate) async fn drain(queue: &TestQueue, db: &TestDb) -> Summary {
    let mut sink = db.sink();
    sink.migrate().await.unwrap();
    pipeline::run(
        queue.source.clone(),
        sink,
        masker(),
        drain_settings(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}
