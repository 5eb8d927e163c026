//! TCP proxies a test controls: one to LocalStack that can be cut, as when the network to SQS
//! fails, and one to PostgreSQL whose target can be switched, as a cluster DNS name moves to a
//! new writer.

use super::sqs_endpoint;

/// A TCP proxy to LocalStack that a test can cut: while down, new connections are closed at once
/// and open ones are dropped, as when the network to SQS fails.
pub(crate) struct SqsProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl SqsProxy {
    pub(crate) async fn start(up: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::watch::channel(up);
        let target = sqs_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*rx.borrow() {
                    // Reset, as a broken network path does (a clean close without a word is
                    // what a port that is not SQS does, and is refused at start).
                    // A zero linger does not block the drop: the reset is sent at once.
                    #[allow(deprecated)]
                    let _ = inbound.set_linger(Some(std::time::Duration::ZERO));
                    continue;
                }
                let mut down = rx.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up: tx }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// A TCP proxy playing a database cluster's DNS name: new connections go to the current target
/// port; connections already open stay where they are (as DNS does).
pub(crate) struct PgProxy {
    pub port: u16,
    target: tokio::sync::watch::Sender<u16>,
}

impl PgProxy {
    pub(crate) async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::watch::channel(target);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = *rx.borrow();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self { port, target: tx }
    }

    /// Send new connections to `port` from now on.
    pub(crate) fn switch_to(&self, port: u16) {
        self.target.send_replace(port);
    }
}
