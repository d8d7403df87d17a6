//! Instances and Redis failing mid-stream: nothing acknowledged is lost, no seq is reused, every
//! client converges on the database's history.

use std::time::Duration;

use converge_testkit::{Cut, PgLink};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::helpers::{Client, Cluster, EVENT_TIMEOUT, PrivateRedis, User};

const SENDERS: usize = 4;
const PER_SENDER: usize = 15;

/// Where a disruption lands in the stream. The disruption starts once a third of the messages are
/// acknowledged, while the senders go on; each sender holds its last third until the disruption has
/// happened, so part of the stream is always sent after it.
#[derive(Clone)]
struct Gate {
    acked: watch::Sender<usize>,
    disrupted: watch::Sender<bool>,
}

impl Gate {
    fn new() -> Self {
        Self { acked: watch::channel(0).0, disrupted: watch::channel(false).0 }
    }

    async fn a_third_acked(&self) {
        let third = SENDERS * PER_SENDER / 3;
        let mut acked = self.acked.subscribe();
        tokio::time::timeout(EVENT_TIMEOUT, acked.wait_for(|n| *n >= third)).await.expect("a third acked").unwrap();
    }

    async fn until_disrupted(&self) {
        let _ = self.disrupted.subscribe().wait_for(|done| *done).await;
    }
}

/// Each client sends its messages (retrying an unacknowledged one with the same clientMsgId after
/// reconnecting to `fallback` instance), then reads until it has `total`. Returns the clients and
/// every acked seq.
async fn stream(
    clients: Vec<Client>,
    chat: Uuid,
    fallback: impl Fn(usize) -> String,
    gate: &Gate,
) -> (Vec<Client>, Vec<i64>) {
    let total = (SENDERS * PER_SENDER) as i64;
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let fallback_url = fallback(i);
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..PER_SENDER {
                if k == PER_SENDER * 2 / 3 {
                    gate.until_disrupted().await;
                }
                loop {
                    if !client.is_connected() {
                        client.reconnect(&fallback_url, &[chat]).await;
                    }
                    if let Some(ack) = client.send_message(chat, &format!("c{i}-{k}")).await {
                        acked.push(ack["message"]["seq"].as_i64().unwrap());
                        gate.acked.send_modify(|n| *n += 1);
                        break;
                    }
                }
            }
            while !client.until_seq(chat, total).await {
                client.reconnect(&fallback_url, &[chat]).await;
            }
            (client, acked)
        }));
    }
    let mut clients = Vec::new();
    let mut acked = Vec::new();
    for task in tasks {
        let (client, seqs) = task.await.unwrap();
        clients.push(client);
        acked.extend(seqs);
    }
    (clients, acked)
}

fn assert_converged(clients: &[Client], chat: Uuid, stored: &[(i64, String)], mut acked: Vec<i64>) {
    let total = (SENDERS * PER_SENDER) as i64;
    acked.sort();
    assert_eq!(acked, (1..=total).collect::<Vec<_>>(), "every send acknowledged once, no seq reused or skipped");
    assert_eq!(stored.len() as i64, total, "everything acknowledged is stored");
    for client in clients {
        assert_eq!(client.received[&chat], stored, "user {}: the stored history, once, in order", client.user.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_instance_reconnect_elsewhere_and_resume_without_loss() {
    let mut cluster = Cluster::start(3).await;
    let (users, chat, clients) = cluster.team(SENDERS).await;
    // Instance 1 dies; its clients go to instance 2.
    let urls: Vec<String> = (0..3).map(|i| cluster.instance(i).ws()).collect();
    let fallback = move |i: usize| if i % 3 == 1 { urls[2].clone() } else { urls[i % 3].clone() };
    let gate = Gate::new();
    let streaming = stream(clients, chat, fallback, &gate);
    let killing = async {
        gate.a_third_acked().await;
        cluster.instance(1).sigkill();
        gate.disrupted.send_replace(true);
    };
    let ((clients, acked), ()) = tokio::join!(streaming, killing);
    let stored = cluster.history(&users[0], chat, 0).await;
    assert_converged(&clients, chat, &stored, acked);
    assert!(clients.iter().any(|c| c.close_code == Some(1006)), "some client lost its instance");
    cluster.instances[1].kill().await;
}

/// Runs a stream over two instances on a private Redis and disrupts Redis a third of the way in.
async fn stream_through_redis_trouble(restart: bool) {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(2, &redis.url(), &[]).await;
    let (users, chat, clients) = cluster.team(SENDERS).await;
    let urls: Vec<String> = (0..2).map(|i| cluster.instance(i).ws()).collect();
    let gate = Gate::new();
    let streaming = stream(clients, chat, move |i| urls[i % 2].clone(), &gate);
    let disrupting = async {
        gate.a_third_acked().await;
        if restart {
            redis.restart().await;
        } else {
            redis.flushall().await;
        }
        gate.disrupted.send_replace(true);
    };
    let ((clients, acked), ()) = tokio::join!(streaming, disrupting);
    let stored = cluster.history(&users[0], chat, 1).await;
    assert_converged(&clients, chat, &stored, acked);
    for i in 0..2 {
        assert_eq!(cluster.instance(i).ready().await["redis"], "up", "instance {i} reports Redis back");
    }
    if restart {
        for i in 0..2 {
            let caught_up = cluster.instance(i).metric("relay_catch_ups_total").await;
            assert!(caught_up >= 2.0, "instance {i} caught up after reconnecting ({caught_up})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_stream_loses_nothing_and_reuses_no_seq() {
    stream_through_redis_trouble(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_flushall_mid_stream_loses_nothing_and_reuses_no_seq() {
    stream_through_redis_trouble(false).await;
}

/// Two instances on a Redis of the test's own; Ana (`sender`, on instance 0) and Bob (`receiver`,
/// on instance 1) in a group, where Ana's first message has reached Bob.
struct AcrossInstances {
    redis: PrivateRedis,
    cluster: Cluster,
    bob: User,
    chat: Uuid,
    sender: Client,
    receiver: Client,
}

async fn across_instances() -> AcrossInstances {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(2, &redis.url(), &[]).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut sender = cluster.connect(&ana, 0).await;
    let mut receiver = cluster.connect(&bob, 1).await;
    sender.send_message(chat, "before").await.expect("acked");
    assert!(receiver.until_seq(chat, 1).await, "the first message crosses");
    AcrossInstances { redis, cluster, bob, chat, sender, receiver }
}

/// The connection an instance publishes on breaks with Redis: the first message after Redis is
/// back must still be published (not left for the next message to reveal as a gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_after_a_redis_restart_crosses_instances_live() {
    let AcrossInstances { mut redis, cluster, chat, mut sender, mut receiver, .. } = across_instances().await;
    // The receipt of that delivery is published too: nothing is left to publish while Redis is away.
    sender.until(|f| f["type"] == "messages_delivered" && f["seq"] == 1).await.expect("delivered");

    let reconnected = [0, 1].map(|i| cluster.instance(i).logged("Redis pub/sub connected"));
    redis.restart().await;
    for both_back in reconnected {
        both_back.await;
    }
    sender.send_message(chat, "after").await.expect("acked");
    assert!(receiver.until_seq(chat, 2).await, "the message after the restart crosses");
    assert_eq!(cluster.instance(0).metric("relay_publish_errors_total").await, 0.0, "no publish failed");
}

/// The link between an instance and PostgreSQL breaks while a send's write is on it: once before
/// the statement reaches the server, once after the server committed it but before the answer
/// came back, so the instance cannot tell whether it was stored. Either way the send is
/// acknowledged once with the seq it is stored at, each member receives it once and at once, and
/// the next send takes the next seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_postgresql_lost_mid_write_loses_and_doubles_nothing() {
    let link = PgLink::start(&converge_testkit::postgres_admin_url()).await;
    let cluster = Cluster::start_through(2, &link).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut sender = cluster.connect(&ana, 0).await;
    let mut receiver = cluster.connect(&bob, 1).await;
    assert_eq!(sender.send_message(chat, "before").await.expect("acked")["message"]["seq"], 1);

    for (n, (cut, seq)) in [(Cut::BeforeTheStatement, 2), (Cut::AfterTheCommit, 3)].into_iter().enumerate() {
        let client_msg_id = format!("cut-{}", Uuid::new_v4());
        link.arm(&client_msg_id, cut);
        let ack = sender.send_message(chat, &client_msg_id).await.expect("acked");
        link.cut(n + 1).await;
        assert_eq!(ack["message"]["seq"], seq, "{cut:?}: {ack}");
        assert_eq!(ack["message"]["clientMsgId"], client_msg_id.as_str());
        // Live, not when a later message reveals the gap.
        assert!(receiver.until_seq(chat, seq).await, "{cut:?}: delivered");
    }
    assert_eq!(sender.send_message(chat, "after").await.expect("acked")["message"]["seq"], 4);

    assert!(receiver.until_seq(chat, 4).await);
    let stored = cluster.history(&ana, chat, 1).await;
    assert_eq!(stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![1, 2, 3, 4], "stored once each");
    assert!(sender.until_seq(chat, 4).await);
    for client in [&sender, &receiver] {
        assert_eq!(client.received[&chat], stored, "user {}: each message once, in order", client.user.id);
    }
    let sender_instance = cluster.instance(0);
    assert_eq!(sender_instance.metric("message_batch_replays_total").await, 2.0, "both writes replayed");
    // The replay stored the write cut before its statement; it found the one cut after its commit.
    assert_eq!(sender_instance.metric("chat_messages_total").await, 3.0, "stored by the replay: 1 of 2");
}

/// PostgreSQL becomes unreachable, then comes back. Meanwhile a send, a read (REST and GraphQL) and
/// the readiness check answer at once with 503 / `unavailable` (worth retrying, unlike `internal`), and a new
/// WebSocket is closed with 1012; once it is back the instance carries on without a restart, the
/// failed send retried with its `clientMsgId` is stored once, after what came before, and the
/// closed client connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_unreachable_requests_answer_unavailable_and_carry_on_after() {
    let link = PgLink::start(&converge_testkit::postgres_admin_url()).await;
    let cluster = Cluster::start_through(1, &link).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut sender = cluster.connect(&ana, 0).await;
    assert_eq!(sender.send_message(chat, "before").await.expect("acked")["message"]["seq"], 1);
    let instance = cluster.instance(0);

    link.set_down(true);
    let send = json!({ "type": "send_message", "req": "during", "chatId": chat, "clientMsgId": "during", "content": "anyone?" });
    sender.send(send.clone()).await;
    let reply = sender.until(|f| f["req"] == "during").await.expect("answered");
    assert_eq!((&reply["type"], &reply["code"]), (&json!("error"), &json!("unavailable")), "{reply}");
    let read = cluster.client.get(format!("{}/chats/{chat}/messages", instance.http())).bearer_auth(&ana.token);
    let read = read.send().await.unwrap();
    assert_eq!(read.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    converge_testkit::assert_error(read, 503, "unavailable").await;
    converge_testkit::assert_error(
        reqwest::get(format!("{}/ready", instance.http())).await.unwrap(),
        503,
        "unavailable",
    )
    .await;
    let query =
        json!({ "query": format!("{{ messages(chatId: \"{chat}\", last: 5) {{ edges {{ node {{ seq }} }} }} }}") });
    let graphql = cluster.client.post(format!("{}/graphql", instance.http())).bearer_auth(&ana.token).json(&query);
    let graphql: serde_json::Value = graphql.send().await.unwrap().json().await.unwrap();
    assert_eq!(graphql["errors"][0]["extensions"]["code"], "unavailable", "{graphql}");
    // A connection that cannot be set up is told to come back (close 1012), not left waiting.
    let mut late = Client::new(&bob);
    assert!(late.try_connect_to(&instance.ws(), None).await.is_none(), "no ready without the database");
    assert_eq!(late.close_code, Some(1012));

    link.set_down(false);
    sender.send(send).await;
    let reply = sender.until(|f| f["req"] == "during").await.expect("answered");
    assert_eq!((&reply["type"], &reply["message"]["seq"]), (&json!("ack"), &json!(2)), "{reply}");
    assert_eq!(sender.send_message(chat, "after").await.expect("acked")["message"]["seq"], 3);
    let stored = cluster.history(&ana, chat, 0).await;
    assert_eq!(stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    let ready = late.connect_to(&instance.ws(), None).await;
    assert_eq!(ready["chats"][0]["lastSeq"], 3, "{ready}");
}

/// Stops Redis, has `reader` read `chat` up to seq 1 over REST on instance 1 (stored, its event
/// lost), and starts Redis again; returns once both instances relay again.
async fn read_while_redis_is_away(cluster: &Cluster, redis: &mut PrivateRedis, reader: &User, chat: Uuid) {
    redis.stop().await;
    let read = cluster.client.post(format!("{}/chats/{chat}/read", cluster.instance(1).http()));
    let read = read.bearer_auth(&reader.token).json(&json!({ "seq": 1 })).send().await.unwrap();
    assert!(read.status().is_success(), "stored while Redis is away: {}", read.status());
    let reconnected = [0, 1].map(|i| cluster.instance(i).logged("Redis pub/sub connected"));
    redis.start_again().await;
    for back in reconnected {
        back.await;
    }
}

/// A read recorded while Redis is away reaches the other instance's clients once it is back, as
/// messages do: when the relay reconnects, each instance tells its clients where their chats'
/// receipts stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_recorded_while_redis_is_away_reaches_the_other_instance_after() {
    let AcrossInstances { mut redis, cluster, bob, chat, mut sender, .. } = across_instances().await;
    read_while_redis_is_away(&cluster, &mut redis, &bob, chat).await;
    let bob_id = bob.id.to_string();
    let told = sender.until(|f| f["type"] == "messages_read" && f["userId"] == bob_id.as_str()).await;
    assert_eq!(told.expect("Ana hears of Bob's read")["seq"], 1);
    let delivered = sender.until(|f| f["type"] == "messages_delivered").await.expect("and of the delivery");
    assert_eq!(delivered["seq"], 1);
}

/// In a group above `READ_RECEIPTS_MAX_CHAT_MEMBERS` a read recorded while Redis is away reaches,
/// once it is back, the reader's own connections on the other instance, and not the other members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_big_group_a_read_recorded_while_redis_is_away_reaches_only_the_readers_connections_after() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(2, &redis.url(), &[("READ_RECEIPTS_MAX_CHAT_MEMBERS", "1")]).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let (mut ana_here, mut bob_here) = (cluster.connect(&ana, 0).await, cluster.connect(&bob, 0).await);
    ana_here.send_message(chat, "read me").await.expect("acked");
    // Consumed now, so that the next one Bob sees is the catch-up's.
    bob_here.until(|f| f["type"] == "messages_delivered" && f["seq"] == 1).await.expect("delivered");

    read_while_redis_is_away(&cluster, &mut redis, &ana, chat).await;
    let told = ana_here.until(|f| f["type"] == "messages_read").await.expect("Ana's other device hears of her read");
    assert_eq!((&told["userId"], &told["seq"]), (&json!(ana.id), &json!(1)));
    // The catch-up tells reads before the delivered mark: by then, a read told to the chat has come.
    bob_here.until(|f| f["type"] == "messages_delivered").await.expect("the catch-up reaches Bob");
    assert!(!bob_here.log.iter().any(|f| f["type"] == "messages_read"), "{:?}", bob_here.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_beyond_the_hot_window_is_served_from_the_database() {
    let cluster = Cluster::start_with(1, &crate::helpers::shared_redis_url(), &[("CHAT_WINDOW_SIZE", "5")]).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut sender = cluster.connect(&ana, 0).await;
    for k in 0..30 {
        sender.send_message(chat, &format!("m{k}")).await.expect("acked");
    }
    let instance = cluster.instance(0);
    let from_db = instance.metric("window_reads_total{served=\"database\"}").await;

    let mut far = Client::new(&bob);
    far.connect_to(&instance.ws(), Some([(chat, 2)].into())).await;
    far.until(|f| f["type"] == "resumed").await.expect("resumed");
    assert_eq!(far.seqs(chat), (3..=30).collect::<Vec<_>>());
    assert!(instance.metric("window_reads_total{served=\"database\"}").await > from_db, "read from the database");

    let from_window = instance.metric("window_reads_total{served=\"window\"}").await;
    let mut near = Client::new(&bob);
    near.connect_to(&instance.ws(), Some([(chat, 27)].into())).await;
    near.until(|f| f["type"] == "resumed").await.expect("resumed");
    assert_eq!(near.seqs(chat), vec![28, 29, 30]);
    assert!(instance.metric("window_reads_total{served=\"window\"}").await > from_window, "read from the window");
    let stored = cluster.history(&ana, chat, 0).await;
    assert_eq!(near.received[&chat], stored[27..].to_vec(), "the window holds the stored messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_to_reconnect_and_exits_within_a_bound() {
    let mut cluster = Cluster::start(2).await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut client = cluster.connect(&ana, 0).await;
    client.send_message(chat, "before").await.expect("acked");

    let took = cluster.instances[0].terminate().await;
    // The echo of "before" may still be on its way (it and the ack come in either order): read to the close.
    assert!(client.until(|frame| frame["type"] != "new_message").await.is_none());
    assert_eq!(client.close_code, Some(1012));
    assert!(took < Duration::from_secs(12), "exited in {took:?}");

    let other = cluster.instance(1).ws();
    client.reconnect(&other, &[chat]).await;
    assert_eq!(client.send_message(chat, "after").await.expect("acked")["message"]["seq"], 2);
}

/// While Redis is away a message cannot be changed — the hot window's copy could not be dropped,
/// and would be served stale once Redis is back — so the change is refused whole: nothing stored,
/// nothing counted. Once Redis is back the same change goes through and crosses instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_redis_is_away_is_refused_whole_and_goes_through_after() {
    let AcrossInstances { mut redis, cluster, bob, chat, mut sender, mut receiver } = across_instances().await;
    let edit = json!({ "type": "edit_message", "req": "e", "chatId": chat, "seq": 1, "content": "edited" });
    redis.stop().await;
    sender.send(edit.clone()).await;
    let refused = sender.until(|f| f["req"] == "e").await.expect("answered");
    assert_eq!((&refused["type"], &refused["code"]), (&json!("error"), &json!("unavailable")), "{refused}");
    let viewed = cluster.get_json(&bob, &format!("/chats/{chat}"), 1).await;
    assert_eq!((&viewed["lastMessage"]["content"], &viewed["lastEditSeq"]), (&json!("msg before"), &json!(0)));

    let reconnected = [0, 1].map(|i| cluster.instance(i).logged("Redis pub/sub connected"));
    redis.start_again().await;
    for back in reconnected {
        back.await;
    }
    sender.send(edit).await;
    let ack = sender.until(|f| f["req"] == "e").await.expect("answered");
    assert_eq!((&ack["type"], &ack["message"]["editSeq"]), (&json!("ack"), &json!(1)), "{ack}");
    let heard = receiver.until(|f| f["type"] == "message_updated").await.expect("crosses to the other instance");
    assert_eq!(heard["message"], ack["message"]);
}
