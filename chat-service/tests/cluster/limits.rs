//! The process a deployment starts: limits it is started under.

use std::time::Duration;

use crate::helpers::{Client, Cluster};

/// Each WebSocket holds a descriptor. Started with a soft limit of 128 open files, as a service
/// manager or a login shell may start it, an instance raises it to the hard limit and holds more
/// connections than 128 (at the soft limit it would stop accepting: the next clients would wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_under_a_low_open_files_limit_holds_more_connections_than_it() {
    const CONNECTIONS: usize = 200;
    let cluster = Cluster::start_under_open_files_limit(1, 128).await;
    let user = cluster.user("many").await;
    let url = cluster.instance(0).ws();
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for n in 1..=CONNECTIONS {
        let mut client = Client::new(&user);
        let ready = tokio::time::timeout(Duration::from_secs(20), client.try_connect_to(&url, None)).await;
        match ready {
            Ok(Some(frame)) => assert_eq!(frame["type"], "ready"),
            Ok(None) => panic!("connection {n} was closed before ready: {:?}", client.close_code),
            Err(_) => panic!("connection {n} was not answered within 20 s"),
        }
        clients.push(client);
    }
    assert_eq!(clients.len(), CONNECTIONS);
}
