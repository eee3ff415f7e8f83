//! The API's connection bounds (`specs/api.md` §1.3) against a real in-process node: a
//! client that withholds or trickles its request headers is disconnected after the header
//! timeout, connections over the limit are closed at once, and the node keeps serving
//! everyone else throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dojang_core::genesis::{Genesis, Validator};
use dojang_node::clock::ManualClock;
use dojang_node::config::NodeConfig;
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(dir: &std::path::Path, max_connections: usize) -> dojang_node::node::RunningNode {
    let vkey = SigningKey::from_bytes(&[1; 32]);
    let genesis = Genesis::new("limits", 0, vec![Validator::with_keys("v0", "Validator 0", &vkey.verifying_key(), &[], "")]);
    let cfg = NodeConfig {
        http_max_connections: max_connections,
        http_header_timeout_ms: 300,
        ..support::node_config(dir, &genesis, &vkey, 1 << 20)
    };
    dojang_node::node::start(&cfg, Arc::new(ManualClock::new(1_780_000_000_000))).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, t.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

async fn healthz(node: &dojang_node::node::RunningNode) -> String {
    let mut s = TcpStream::connect(node.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let (got, _) = until_closed(&mut s, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_silent_clients_are_dropped_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 64).await;
    // Silent: connects and sends nothing.
    let mut silent = TcpStream::connect(node.addr).await.unwrap();
    // Slowloris: half a request line, then nothing.
    let mut slow = TcpStream::connect(node.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let ((_, silent_after), (_, slow_after)) =
        tokio::join!(until_closed(&mut silent, Duration::from_secs(10)), until_closed(&mut slow, Duration::from_secs(10)));
    // Not before the 300 ms timeout (less a margin for the two connects), not much after.
    for after in [silent_after, slow_after] {
        assert!(after >= Duration::from_millis(200), "closed before the header timeout: {after:?}");
    }
    assert!(healthz(&node).await.starts_with("HTTP/1.1 200"), "the node still serves others");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(node.addr).await.unwrap();
        // A complete request keeps the slot busy until the header timeout of the next one.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut over = TcpStream::connect(node.addr).await.unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (got, after) = until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "a connection over the limit was served: {}", String::from_utf8_lossy(&got));
    assert!(after < Duration::from_millis(250), "closed only after {after:?}, not at once");
    // The held connections time out (no next request), freeing their slots.
    for mut s in held {
        until_closed(&mut s, Duration::from_secs(10)).await;
    }
    let t = Instant::now();
    loop {
        let answer = healthz(&node).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "slots were never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
}
