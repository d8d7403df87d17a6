//! Presence across instances: first connection anywhere → online, last one → offline, a dead
//! instance's users → offline within the expiry.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::helpers::{Cluster, redis_command, shared_redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_instances_goes_offline_only_after_both_close() {
    let cluster = Cluster::start(3).await;
    let (una, obs) = (cluster.user("una").await, cluster.user("obs").await);
    let chat = cluster.group(&una, &[&obs]).await;
    let mut observer = cluster.connect(&obs, 2).await;
    let is_una = |online: bool| {
        let id = una.id.to_string();
        move |f: &serde_json::Value| f["type"] == "presence" && f["userId"] == id.as_str() && f["online"] == online
    };

    let mut tab_a = cluster.connect(&una, 0).await;
    observer.until(is_una(true)).await.expect("online");
    let joined_b = cluster.instance(1).logged(&format!("presence joined {}", una.id));
    let mut tab_b = cluster.connect(&una, 1).await;
    joined_b.await;
    let key = format!("{}presence:user:{{{}}}", cluster.prefix, una.id);
    let entries = || async { redis_command::<i64>(&cluster.redis_url, redis::cmd("ZCARD").arg(&key).clone()).await };
    assert_eq!(entries().await, 2, "una is on two instances");

    let left_a = cluster.instance(0).logged(&format!("presence left {}", una.id));
    tab_a.close().await;
    left_a.await;
    assert_eq!(entries().await, 1, "instance 0 let go of una");
    // A marker published after that: an offline flip would have reached the observer before it.
    tab_b.send_message(chat, "still here").await.expect("acked");
    assert!(observer.until_seq(chat, 1).await);
    assert!(!observer.log.iter().any(is_una(false)), "not offline while a tab is open: {:?}", observer.log);

    tab_b.close().await;
    observer.until(is_una(false)).await.expect("offline after the last tab closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_users_go_offline_within_the_expiry() {
    const TTL: u64 = 2;
    let mut cluster = Cluster::start_with(2, &shared_redis_url(), &[("PRESENCE_TTL_SECS", "2")]).await;
    let (una, ivo, obs) = (cluster.user("una").await, cluster.user("ivo").await, cluster.user("obs").await);
    // Each with the observer in a chat of their own: the reap tells each chat of its own user.
    let una_chat = cluster.group(&una, &[&obs]).await;
    let ivo_chat = cluster.group(&ivo, &[&obs]).await;
    let joined = [&una, &ivo].map(|user| cluster.instance(0).logged(&format!("presence joined {}", user.id)));
    let (_una, _ivo) = (cluster.connect(&una, 0).await, cluster.connect(&ivo, 0).await);
    futures_util::future::join_all(joined).await;

    let mut observer = cluster.connect(&obs, 1).await;
    let ready = observer.log.iter().find(|f| f["type"] == "ready").expect("ready").clone();
    let mut online: Vec<String> = serde_json::from_value(ready["online"].clone()).expect("ids");
    online.sort();
    let mut expected = vec![una.id.to_string(), ivo.id.to_string()];
    expected.sort();
    assert_eq!(online, expected, "ready lists the online peers");

    cluster.instances[0].kill().await;
    let killed = Instant::now();
    // One reap round announces both, in whichever order the dead instance's set lists them.
    let mut awaited = vec![(una.id.to_string(), una_chat.to_string()), (ivo.id.to_string(), ivo_chat.to_string())];
    while !awaited.is_empty() {
        let frame = observer.until(|f| f["type"] == "presence" && f["online"] == false).await.expect("offline");
        let flip = (
            frame["userId"].as_str().unwrap_or_default().to_owned(),
            frame["chatId"].as_str().unwrap_or_default().to_owned(),
        );
        match awaited.iter().position(|a| *a == flip) {
            Some(index) => {
                awaited.remove(index);
            }
            None => panic!("an offline announcement for {flip:?}, awaiting {awaited:?}"),
        }
    }
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(TTL * 2 + 1), "offline {took:?} after the kill (TTL {TTL} s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instance_with_thousands_of_users_is_cleaned_up_whole() {
    // More users than one Redis command's time bound lets anyone reap in one go.
    const USERS: usize = 8_000;
    let cluster = Cluster::start_with(1, &shared_redis_url(), &[("PRESENCE_TTL_SECS", "2")]).await;
    let dead = Uuid::new_v4();
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    let last_beat = chrono::Utc::now().timestamp_millis() - 60_000;
    let instance_key = format!("{}presence:instance:{dead}", cluster.prefix);
    let user_key = |user: Uuid| format!("{}presence:user:{{{user}}}", cluster.prefix);
    let mut seed = redis::pipe();
    for user in &users {
        seed.sadd(&instance_key, user.to_string()).ignore();
        seed.zadd(user_key(*user), dead.to_string(), last_beat).ignore();
    }
    let cleaned = cluster.instance(0).logged(&format!("cleaned up after dead instance {dead}: {USERS} users"));
    seed.zadd(format!("{}instances", cluster.prefix), dead.to_string(), last_beat).ignore();
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    seed.query_async::<()>(&mut conn).await.unwrap();

    cleaned.await;
    let url = cluster.redis_url.as_str();
    let exists = |key: String| async move { redis_command::<bool>(url, redis::cmd("EXISTS").arg(key).clone()).await };
    assert!(!exists(instance_key.clone()).await, "the dead instance's set is gone");
    for user in [users[0], users[USERS / 2], users[USERS - 1]] {
        assert!(!exists(user_key(user)).await, "{user} is no longer listed on the dead instance");
    }
    let alive: Vec<String> = redis_command(
        &cluster.redis_url,
        redis::cmd("ZRANGE").arg(format!("{}instances", cluster.prefix)).arg(0).arg(-1).clone(),
    )
    .await;
    assert!(!alive.contains(&dead.to_string()), "the dead instance is no longer listed: {alive:?}");
}
