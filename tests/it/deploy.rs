//! The CloudFormation template's queue part (deploy/cloudformation/queue-and-key.yaml) deployed on
//! LocalStack with the AWS CLI, and the sample drained through what it created: its queue, its
//! dead-letter queue, its redrive policy and a key ring encrypted under its KMS key.

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_sqs::types::QueueAttributeName;

use crate::helpers::*;

/// The AWS CLI from the LocalStack venv (scripts/stack-up.sh installs it from its lock file).
fn aws(args: &[&str]) -> String {
    let stack_dir = std::env::var("LOGIN_ETL_STACK_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack"),
        PathBuf::from,
    );
    // The CLI from the pinned LocalStack venv (scripts/stack-up.sh installs it), else one on PATH.
    let pinned = stack_dir.join("localstack-venv/bin/aws");
    let cli = if pinned.exists() {
        pinned
    } else {
        PathBuf::from("aws")
    };
    let out = Command::new(&cli)
        .args([
            "--endpoint-url",
            &sqs_endpoint(),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the AWS CLI ({}): {e}; run scripts/stack-up.sh, which installs it",
                cli.display()
            )
        });
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes the stack when the test ends, however it ends.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            aws(&["cloudformation", "delete-stack", "--stack-name", &self.0])
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cloudformation_queue_stack_deploys_on_localstack_and_drains_the_sample() {
    require_stack();
    let db = TestDb::new().await;
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let (stack_name, queue_name) = (format!("login-etl-{id}"), format!("login-{id}"));
    let template = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/cloudformation/queue-and-key.yaml"
    );
    aws(&[
        "cloudformation",
        "deploy",
        "--template-file",
        template,
        "--stack-name",
        &stack_name,
        "--parameter-overrides",
        &format!("QueueName={queue_name}"),
        "MaxReceives=5",
        "KeyAdministratorArns=arn:aws:iam::000000000000:role/key-admin",
    ]);
    let _stack = Stack(stack_name.clone());
    let described: serde_json::Value = serde_json::from_str(&aws(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack_name,
    ]))
    .unwrap();
    let output = |key: &str| {
        described["Stacks"][0]["Outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["OutputKey"] == key)
            .and_then(|o| o["OutputValue"].as_str())
            .unwrap_or_else(|| panic!("output {key} in {described}"))
            .to_string()
    };

    // The queue as the template made it: redrive to its DLQ after 2 x 5 + 2 receives.
    let queue = TestQueue::adopt(&sqs_endpoint(), &queue_name).await;
    let dlq = TestQueue::adopt(&sqs_endpoint(), &format!("{queue_name}-dlq")).await;
    let attributes = login_etl::source::sqs::client(&queue.settings())
        .await
        .get_queue_attributes()
        .queue_url(queue.source.queue_url())
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "12"
    );
    assert!(redrive["deadLetterTargetArn"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{queue_name}-dlq")));
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "60");

    // A key ring encrypted under the stack's KMS key, the way docs/deploy.md says to make one.
    let keygen = run_ok(binary(&queue, &db).args([
        "keygen",
        "--id",
        "k1",
        "--kms-key-id",
        &output("MaskKeyRingKeyArn"),
    ]));
    let key_entry = String::from_utf8_lossy(&keygen.stdout).trim().to_string();
    assert!(key_entry.starts_with("k1:kms:"), "{key_entry}");

    queue.send(&sample_bodies()).await;
    let check = run_binary(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_KEY", &key_entry)
            .env("LOGIN_ETL_QUEUE_URL", output("QueueUrl"))
            .env("LOGIN_ETL_MAX_RECEIVES", output("MaxReceives"))
            .arg("check"),
    );
    let check_text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check_text.contains("redrive policy maxReceiveCount 12 leaves login-etl room"),
        "{check_text}"
    );
    run_ok(
        binary(&queue, &db)
            .env("LOGIN_ETL_MASK_KEY", &key_entry)
            .env("LOGIN_ETL_QUEUE_URL", output("QueueUrl"))
            .env("LOGIN_ETL_MAX_RECEIVES", output("MaxReceives"))
            .env("LOGIN_ETL_DEAD_LETTER_QUEUE", output("DeadLetterQueueUrl"))
            .args(["run", "--drain"]),
    );
    assert_landed(&db, &queue, 99, 1).await;
    assert_eq!(
        dlq.remaining().await,
        1,
        "the quarantined message was forwarded"
    );
}
