//! Group commit: concurrent sends share transactions without changing what each is promised.

use serde_json::{Value, json};

use crate::helpers::{TestStack, metric, on_both_backends};

on_both_backends! {
    async fn concurrent_sends_commit_in_batches_without_gaps_duplicates_or_strays(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let eve = stack.user("eve").await;
        let chat = stack.group(&ana, &[&bob]).await;
        let other = stack.group(&bob, &[&ana]).await;
        let metrics_url = format!("{}/metrics", stack.chat_url);
        let before = stack.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();

        // Many sends at once: distinct ones, retries of one clientMsgId, a stranger, a missing chat.
        let mut sends = Vec::new();
        for n in 0..40 {
            let (user, chat_id, id) = match n % 8 {
                0 => (&eve, chat, format!("eve-{n}")),
                1 => (&ana, uuid::Uuid::now_v7(), format!("nowhere-{n}")),
                2 => (&bob, chat, "retried".to_owned()),
                3 => (&ana, other, format!("other-{n}")),
                _ => (&ana, chat, format!("ana-{n}")),
            };
            let (client, url, token) = (stack.client.clone(), format!("{}/chats/{chat_id}/messages", stack.chat_url), user.token.clone());
            sends.push(tokio::spawn(async move {
                let res = client.post(url).bearer_auth(token).json(&json!({ "clientMsgId": id, "content": format!("send {n}") })).send().await.unwrap();
                (n % 8, res.status().as_u16(), res.json::<Value>().await.unwrap())
            }));
        }
        let mut retried = Vec::new();
        for send in sends {
            let (kind, status, body) = send.await.unwrap();
            match kind {
                0 => assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden"))),
                1 => assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found"))),
                2 => { assert!(status == 200 || status == 201, "{body}"); retried.push(body) }
                _ => assert_eq!(status, 201, "{body}"),
            }
        }
        assert!(retried.windows(2).all(|pair| pair[0] == pair[1]), "every retry returns the one original");

        let page: Value = stack.get(&ana, &format!("/chats/{chat}/messages?limit=200")).await.json().await.unwrap();
        let seqs: Vec<i64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=21).collect::<Vec<_>>(), "20 of Ana's and one of Bob's, gap-free");
        let other_page: Value = stack.get(&ana, &format!("/chats/{other}/messages")).await.json().await.unwrap();
        assert_eq!(other_page["messages"].as_array().unwrap().len(), 5);

        let after = stack.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        let batches = metric(&after, "message_batch_size_count") - metric(&before, "message_batch_size_count");
        let batched = metric(&after, "message_batch_size_sum") - metric(&before, "message_batch_size_sum");
        assert!(batched > batches, "some transactions stored several sends ({batched} sends in {batches} batches)");
    }
}
