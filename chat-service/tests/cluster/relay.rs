//! Delivery across instances: exactly once, in order, only where it is wanted, deduplicated.

use std::collections::HashMap;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Client, Cluster};

/// Every client reads until it has `last` of `chat_id`; returns the clients.
async fn read_all(clients: Vec<Client>, chat_id: Uuid, last: i64) -> Vec<Client> {
    let mut tasks = Vec::new();
    for mut client in clients {
        tasks.push(tokio::spawn(async move {
            assert!(client.until_seq(chat_id, last).await, "connection lost");
            client
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_instances_receive_every_message_exactly_once_in_seq_order() {
    const PER_SENDER: usize = 8;
    let cluster = Cluster::start(3).await;
    let (users, chat, clients) = cluster.team(6).await;

    // Everyone sends at once, on all three instances.
    let mut senders = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            for k in 0..PER_SENDER {
                client.send_message(chat, &format!("c{i}-{k}")).await.expect("acked");
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for sender in senders {
        clients.push(sender.await.unwrap());
    }
    let total = (6 * PER_SENDER) as i64;
    let mut clients = read_all(clients, chat, total).await;
    // A last message fences off anything that would still arrive twice.
    clients[0].send_message(chat, "fence").await.expect("acked");
    let clients = read_all(clients, chat, total + 1).await;

    let expected: Vec<i64> = (1..=total + 1).collect();
    let stored = cluster.history(&users[0], chat, 2).await;
    for client in &clients {
        assert_eq!(client.seqs(chat), expected, "user {} got every message once, in order", client.user.id);
        assert_eq!(client.received[&chat], stored, "and exactly the stored ones");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_members_of_a_chat_receives_none_of_its_traffic() {
    let cluster = Cluster::start(3).await;
    let (x1, x2, y1, y2) =
        (cluster.user("x1").await, cluster.user("x2").await, cluster.user("y1").await, cluster.user("y2").await);
    let chat_x = cluster.group(&x1, &[&x2]).await;
    let chat_y = cluster.group(&y1, &[&y2]).await;
    // Instance 2 hosts only y2; chat X lives on instances 0 and 1.
    // y2's own presence is published (or not) before y1 connects; y1's then reaches C after it.
    let y2_joined = cluster.instance(2).logged(&format!("presence joined {}", y2.id));
    let mut on_c = cluster.connect(&y2, 2).await;
    y2_joined.await;
    let mut y1_client = cluster.connect(&y1, 0).await;
    on_c.until(|f| f["type"] == "presence" && f["userId"] == y1.id.to_string()).await.expect("y1's presence reaches C");
    let baseline = cluster.instance(2).metric("relay_events_received_total{kind=\"chat\"}").await;
    assert!(baseline >= 1.0, "C receives the traffic of its own chats");

    let mut a = cluster.connect(&x1, 0).await;
    let mut b = cluster.connect(&x2, 1).await;
    for k in 0..20 {
        a.send_message(chat_x, &format!("a{k}")).await.expect("acked");
        b.send_message(chat_x, &format!("b{k}")).await.expect("acked");
    }
    a.send(json!({ "type": "typing_start", "chatId": chat_x })).await;
    a.send(json!({ "type": "mark_as_read", "chatId": chat_x, "seq": 40 })).await;
    assert!(b.until_seq(chat_x, 40).await);
    b.until(|f| f["type"] == "messages_read" && f["userId"] == x1.id.to_string()).await.expect("the receipt crosses");
    assert!(cluster.instance(1).metric("relay_events_received_total{kind=\"chat\"}").await >= 20.0, "B hears A");

    // Chat Y's traffic still reaches C — and is all C ever received.
    y1_client.send_message(chat_y, "y").await.expect("acked");
    assert!(on_c.until_seq(chat_y, 1).await);
    // Redis delivers to C's connection in publish order: had C been subscribed to chat X, its 40
    // messages and receipts would have arrived before Y's message.
    let after = cluster.instance(2).metric("relay_events_received_total{kind=\"chat\"}").await;
    assert!(after > baseline, "C received chat Y's message");
    assert!(after - baseline <= 3.0, "C received nothing of chat X ({baseline} → {after})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sends_racing_on_two_instances_are_stored_once_and_answered_alike() {
    let cluster = Cluster::start(2).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let (mut on_a, mut on_b) = (cluster.connect(&ana, 0).await, cluster.connect(&ana, 1).await);
    let ids: Vec<String> = (0..40).map(|i| format!("race-{i}")).collect();

    // Two tabs send the same clientMsgIds back to back, so both instances' batches carry the same
    // keys at the same time and one of them loses the race on the unique index.
    let (acks_a, acks_b) = tokio::join!(send_all(&mut on_a, chat, &ids), send_all(&mut on_b, chat, &ids));

    let stored = cluster.history(&ana, chat, 0).await;
    assert_eq!(
        stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<i64>>(),
        "stored once each, no gap"
    );
    for id in &ids {
        let (a, b) = (&acks_a[id]["message"], &acks_b[id]["message"]);
        assert_eq!(a["id"], b["id"], "{id}: both tabs are answered with the one stored message");
        assert_eq!(a["seq"], b["seq"], "{id}");
        assert!(stored.contains(&(a["seq"].as_i64().unwrap(), a["id"].as_str().unwrap().to_owned())), "{id}: {a}");
    }
}

/// Sends a message for every id without waiting, then returns each id's ack (an error fails the test).
async fn send_all(client: &mut Client, chat: Uuid, ids: &[String]) -> HashMap<String, serde_json::Value> {
    for id in ids {
        let content = format!("msg {id}");
        client
            .send(json!({ "type": "send_message", "req": id, "chatId": chat, "clientMsgId": id, "content": content }))
            .await;
    }
    let mut acks = HashMap::new();
    while acks.len() < ids.len() {
        let frame = client.next().await.expect("the connection stays open");
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "ack" {
            acks.insert(frame["req"].as_str().unwrap().to_owned(), frame);
        }
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_instance_returns_the_original_message() {
    let cluster = Cluster::start(2).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut on_a = cluster.connect(&ana, 0).await;
    let first = on_a.send_message(chat, "same-id").await.expect("acked");
    on_a.close().await;

    let mut on_b = cluster.connect(&ana, 1).await;
    let retry = on_b.send_message(chat, "same-id").await.expect("acked");
    assert_eq!(retry["message"]["id"], first["message"]["id"]);
    assert_eq!(retry["message"]["seq"], 1);
    let stored = cluster.history(&ana, chat, 1).await;
    assert_eq!(stored.len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_member_is_shown_by_the_new_name_on_every_instance() {
    let cluster = Cluster::start(2).await;
    let username = format!("una{}", &Uuid::new_v4().simple().to_string()[..8]);
    let una = converge_testkit::register(&cluster.client, &cluster.users_url, &username, "Una").await;
    let obs = cluster.user("obs").await;
    let chat = cluster.group(&una, &[&obs]).await;
    let mut una_ws = cluster.connect(&una, 0).await;
    let mut observer = cluster.connect(&obs, 1).await;

    // Renamed in user-service; the next token carries the name, and the open connection takes it.
    let renamed = cluster
        .client
        .patch(format!("{}/users/me", cluster.users_url))
        .bearer_auth(&una.token)
        .json(&json!({ "displayName": "Una Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status().as_u16(), 200);
    let login: serde_json::Value = cluster
        .client
        .post(format!("{}/auth/login", cluster.users_url))
        .json(&json!({ "login": username, "password": "correct horse battery" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    una_ws.send(json!({ "type": "auth", "req": "renew", "token": login["accessToken"] })).await;
    una_ws.until(|f| f["type"] == "authenticated").await.expect("renewed");

    let expected = json!({
        "type": "participant_updated", "chatId": chat, "userId": una.id, "displayName": "Una Renamed", "avatarUrl": null
    });
    let seen = observer.until(|f| f["type"] == "participant_updated").await.expect("told on the other instance");
    assert_eq!(seen, expected);
    let own = una_ws.until(|f| f["type"] == "participant_updated").await.expect("told to una's own connection");
    assert_eq!(own, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_instance_reaches_the_other_and_no_stale_copy_is_served() {
    let cluster = Cluster::start(2).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut ana_ws = cluster.connect(&ana, 0).await;
    let mut bob_ws = cluster.connect(&bob, 1).await;
    for id in ["m1", "m2", "m3"] {
        ana_ws.send_message(chat, id).await.expect("acked");
    }
    assert!(bob_ws.until_seq(chat, 3).await);

    let change = |via: usize, seq: i64, method: reqwest::Method| {
        let url = format!("{}/chats/{chat}/messages/{seq}", cluster.instance(via).http());
        cluster.client.request(method, url).bearer_auth(&ana.token)
    };
    let edited: serde_json::Value = change(0, 2, reqwest::Method::PATCH)
        .json(&json!({ "content": "edited" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let heard = bob_ws.until(|f| f["type"] == "message_updated").await.expect("relayed to the other instance");
    assert_eq!(heard["message"], edited);

    // The other instance serves the page from the hot window, and the window has the new copy.
    let from_window = cluster.instance(1).metric("window_reads_total{served=\"window\"}").await;
    let page = cluster.get_json(&bob, &format!("/chats/{chat}/messages"), 1).await;
    assert_eq!(page["messages"][1], edited, "{page}");
    assert!(
        cluster.instance(1).metric("window_reads_total{served=\"window\"}").await > from_window,
        "read from the window"
    );

    // A deletion through the second instance; Bob, away meanwhile, resumes on the first: the
    // backlog holds the messages as they are now, and the changes of what he had follow it.
    bob_ws.close().await;
    let deleted: serde_json::Value = change(1, 3, reqwest::Method::DELETE).send().await.unwrap().json().await.unwrap();
    // Heard by Ana on the first instance: its hub has handed the deletion out, so it cannot also
    // reach Bob's new connection live, ahead of the resume.
    ana_ws.until(|f| f["type"] == "message_updated" && f["message"]["seq"] == 3).await.expect("the deletion relayed");
    let mut back = Client::new(&bob);
    back.connect_to(&cluster.instance(0).ws(), None).await;
    back.send(json!({ "type": "resume", "req": "r", "chats": { chat.to_string(): 1 }, "editsAfter": { chat.to_string(): 0 } })).await;
    let mut backlog = Vec::new();
    let resumed = back
        .until(|f| {
            if f["type"] == "new_message" || f["type"] == "message_updated" {
                backlog.push(f.clone());
            }
            f["type"] == "resumed"
        })
        .await
        .expect("resumed");
    assert_eq!(backlog.len(), 2, "{backlog:?}");
    assert_eq!((backlog[0]["type"].as_str(), &backlog[0]["message"]), (Some("new_message"), &edited));
    assert_eq!((backlog[1]["type"].as_str(), &backlog[1]["message"]), (Some("new_message"), &deleted));
    assert_eq!(resumed["edits"], json!({ chat.to_string(): 2 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_closes_the_connections_on_every_instance_and_every_instance_refuses_the_token() {
    let cluster = Cluster::start(2).await;
    let ana = cluster.user("ana").await;
    let (mut first, mut second) = (cluster.connect(&ana, 0).await, cluster.connect(&ana, 1).await);
    let chats = |via: usize| {
        cluster.client.get(format!("{}/chats", cluster.instance(via).http())).bearer_auth(&ana.token).send()
    };
    assert_eq!(chats(1).await.unwrap().status(), reqwest::StatusCode::OK);

    // user-service announces it over Redis once the sessions are ended; both instances hear it.
    let res = cluster.client.post(format!("{}/auth/logout-all", cluster.users_url)).bearer_auth(&ana.token).send();
    assert_eq!(res.await.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
    for client in [&mut first, &mut second] {
        let told = client.until(|f| f["type"] == "error").await.expect("told before the close");
        assert_eq!(told["code"], "invalid_token", "{told}");
        assert_eq!(client.next().await, None);
        assert_eq!(client.close_code, Some(4001));
    }
    for via in [0, 1] {
        assert_eq!(chats(via).await.unwrap().status(), reqwest::StatusCode::UNAUTHORIZED, "instance {via}");
        assert_eq!(cluster.instance(via).metric("sessions_ended_heard_total").await, 1.0, "instance {via}");
    }
}
