//! Stopping: the first SIGINT/SIGTERM finishes the batch in flight (pipeline.rs), a second one
//! exits at once even while a commit is stalled — nothing is lost, the uncommitted messages
//! come back after the visibility timeout.

use std::time::{Duration, Instant};

use crate::helpers::*;

fn signal(run: &Spawned, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once_while_a_commit_is_stalled() {
    // Every order of the two signals a user or an orchestrator sends.
    for (first, second) in [
        ("TERM", "TERM"),
        ("INT", "INT"),
        ("TERM", "INT"),
        ("INT", "TERM"),
    ] {
        let (db, queue) = (TestDb::new().await, TestQueue::new(30).await);
        db.sink().migrate().await.unwrap();
        // Far longer than the test waits for the exit: only the second signal can end the run.
        slow_down_copy(&db, 600).await;
        queue.send(&sample_bodies()[..5]).await;
        let mut run = Spawned::new(binary(&queue, &db).args(["run", "--drain"]));
        wait_until("the commit to stall", Duration::from_secs(60), || async {
            sleeping_backends(&db).await > 0
        })
        .await;

        signal(&run, first);
        wait_until(
            "the first signal's log line",
            Duration::from_secs(30),
            || {
                let seen = run.log().contains("shutdown requested");
                async move { seen }
            },
        )
        .await;
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "SIG{first} alone waits for the batch in flight; log:\n{}",
            run.log()
        );

        let sent = Instant::now();
        signal(&run, second);
        let status = run.wait(Duration::from_secs(20)).await;
        let took = sent.elapsed();
        assert_eq!(
            status.code(),
            Some(130),
            "SIG{first} then SIG{second}: abort, exit 130; log:\n{}",
            run.log()
        );
        assert!(run.log().contains("aborting"), "{}", run.log());
        eprintln!("SIG{first} then SIG{second}: exited {took:?} after the second signal");
        let counts = db.counts().await;
        assert_eq!((counts.rows, counts.processed), (0, 0), "nothing committed");
        assert_eq!(queue.remaining().await, 5, "nothing deleted: all come back");
    }
}
