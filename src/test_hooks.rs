//! Failures on purpose, compiled only with the `test-hooks` feature (scripts/test.sh turns it
//! on; release builds never have it), for the tests that prove such failures are handled.

/// `LOGIN_ETL_TEST_PANIC_IN_RECEIVER=1`: a receiver panics after handing on its first non-empty
/// receive.
pub(crate) fn after_receive() {
    if std::env::var_os("LOGIN_ETL_TEST_PANIC_IN_RECEIVER").is_some() {
        panic!("test hook: receiver panics on purpose");
    }
}

/// `LOGIN_ETL_TEST_ABORT_ON_BODY=<marker>`: the process aborts (as on a crash that no handler
/// sees) whenever it is about to commit a body containing the marker as processed (not when it
/// quarantines it as a poison message: that does not process the body).
pub(crate) fn before_commit<'a>(mut bodies: impl Iterator<Item = &'a str>) {
    if let Some(marker) = std::env::var("LOGIN_ETL_TEST_ABORT_ON_BODY")
        .ok()
        .filter(|m| !m.is_empty())
    {
        if bodies.any(|body| body.contains(&marker)) {
            eprintln!("test hook: aborting on a marker body");
            std::process::abort();
        }
    }
}

/// `LOGIN_ETL_TEST_STALL_AFTER_COMMIT=1`: after a batch commits, the committer stalls for an
/// hour before the batch can be deleted, so a test can SIGKILL the process in exactly that gap.
pub(crate) fn after_commit() {
    if std::env::var_os("LOGIN_ETL_TEST_STALL_AFTER_COMMIT").is_some() {
        eprintln!("test hook: committed; stalling before the delete");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// `LOGIN_ETL_TEST_SPOIL_REDRIVE_DELETES=once|always`: `redrive` deletes dead letters it copied
/// with a receipt handle SQS refuses, on the first attempt (`once`) or on every one (`always`),
/// so a test sees a DeleteMessageBatch whose entries fail in a successful call.
pub(crate) fn redrive_receipt(attempt: usize, receipt: String) -> String {
    match std::env::var("LOGIN_ETL_TEST_SPOIL_REDRIVE_DELETES").as_deref() {
        Ok("always") => "spoiled-by-a-test-hook".to_string(),
        Ok("once") if attempt == 0 => "spoiled-by-a-test-hook".to_string(),
        _ => receipt,
    }
}
