//! A local HTTP server that answers like a misconfigured or foreign "SQS": for tests of what a
//! user sees when the endpoint is not what login-etl expects. Not a stand-in for SQS in any test
//! of the pipeline (those use LocalStack).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A canned reply: status, content type, body.
pub(crate) type Reply = (u16, &'static str, String);

pub(crate) struct FakeSqs {
    pub port: u16,
}

impl FakeSqs {
    /// Serve `reply(operation)` for every request; `operation` is the `X-Amz-Target` suffix
    /// (e.g. `GetQueueUrl`), or empty when there is none.
    pub(crate) async fn start(reply: fn(&str, u16) -> Reply) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    loop {
                        let Some(operation) = read_request(&mut stream).await else {
                            return;
                        };
                        let (status, content_type, body) = reply(&operation, port);
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n\
                             content-length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).await.is_err()
                            || stream.write_all(body.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { port }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Read one request; its operation name, or `None` when the connection closed.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    // Header names in any case; values as sent (the operation name keeps its case).
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < header_end + length {
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    let target = header("x-amz-target").unwrap_or_default();
    Some(target.rsplit('.').next().unwrap_or_default().to_string())
}
