//! Failures on purpose, compiled only with the `test-hooks` feature (scripts/test.sh turns it
//! on; release builds never have it), for the tests that prove such failures are handled.

/// `LOGIN_ETL_TEST_PANIC_IN_RECEIVER=1`: a receiver panics after its first non-empty receive.
pub(crate) fn after_receive() {
    if std::env::var_os("LOGIN_ETL_TEST_PANIC_IN_RECEIVER").is_some() {
        panic!("test hook: receiver panics on purpose");
    }
}
