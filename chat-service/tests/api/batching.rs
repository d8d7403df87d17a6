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

        let first: Value = stack
            .post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "first", "content": "first" }))
            .await
            .json()
            .await
            .unwrap();

        // Many sends at once: distinct ones, retries of one clientMsgId and of a stored message,
        // replies to a stored message and to none, a stranger, a missing chat.
        let mut sends = Vec::new();
        for n in 0..40 {
            let (user, chat_id, id, reply_to) = match n % 8 {
                0 => (&eve, chat, format!("eve-{n}"), None),
                1 => (&ana, uuid::Uuid::now_v7(), format!("nowhere-{n}"), None),
                2 => (&bob, chat, "retried".to_owned(), None),
                3 => (&ana, other, format!("other-{n}"), None),
                4 => (&ana, chat, format!("reply-{n}"), Some(1)),
                5 => (&ana, chat, format!("reply-to-nothing-{n}"), Some(999)),
                6 => (&ana, chat, "first".to_owned(), None),
                _ => (&ana, chat, format!("ana-{n}"), None),
            };
            let (client, url, token) = (stack.client.clone(), format!("{}/chats/{chat_id}/messages", stack.chat_url), user.token.clone());
            sends.push(tokio::spawn(async move {
                let body = json!({ "clientMsgId": id, "content": format!("send {n}"), "replyTo": reply_to });
                let res = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
                (n % 8, res.status().as_u16(), res.json::<Value>().await.unwrap())
            }));
        }
        let mut retried = Vec::new();
        for send in sends {
            let (kind, status, body) = send.await.unwrap();
            match kind {
                0 => assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden"))),
                1 => assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found"))),
                2 => { assert_eq!(status, 201, "{body}"); retried.push(body) }
                4 => assert_eq!((status, &body["replyTo"]), (201, &json!(1)), "{body}"),
                5 => assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_seq"))),
                6 => assert_eq!((status, &body), (201, &first), "a retry of a stored message returns it"),
                _ => assert_eq!(status, 201, "{body}"),
            }
        }
        assert!(retried.windows(2).all(|pair| pair[0] == pair[1]), "every retry returns the one original");

        let page: Value = stack.get(&ana, &format!("/chats/{chat}/messages?limit=200")).await.json().await.unwrap();
        let stored: Vec<(i64, String)> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["seq"].as_i64().unwrap(), m["clientMsgId"].as_str().unwrap().to_owned()))
            .collect();
        let seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>(), "the first, 5 replies, 5 of Ana's and one of Bob's, gap-free: {stored:?}");
        assert!(stored.iter().all(|(_, id)| !id.starts_with("reply-to-nothing")), "refused sends store nothing");
        let other_page: Value = stack.get(&ana, &format!("/chats/{other}/messages")).await.json().await.unwrap();
        assert_eq!(other_page["messages"].as_array().unwrap().len(), 5);

        let after = stack.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        let batches = metric(&after, "message_batch_size_count") - metric(&before, "message_batch_size_count");
        let batched = metric(&after, "message_batch_size_sum") - metric(&before, "message_batch_size_sum");
        assert!(batched > batches, "some transactions stored several sends ({batched} sends in {batches} batches)");
    }
}
