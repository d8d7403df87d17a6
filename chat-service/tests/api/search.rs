//! Finding messages by their text: only in the viewer's chats, newest first, paged by id, with
//! `%` and `_` taken literally.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::helpers::*;

impl TestStack {
    async fn search(&self, user: &User, query: &[(&str, String)]) -> reqwest::Response {
        let mut url = reqwest::Url::parse(&format!("{}/messages/search", self.chat_url)).unwrap();
        url.query_pairs_mut().extend_pairs(query);
        self.client.get(url).bearer_auth(&user.token).send().await.unwrap()
    }

    /// The contents found for `q` (optionally in one chat), newest first.
    async fn found(&self, user: &User, q: &str, chat: Option<Uuid>) -> Vec<String> {
        let mut query = vec![("q", q.to_owned())];
        query.extend(chat.map(|c| ("chatId", c.to_string())));
        let res = self.search(user, &query).await;
        assert_eq!(res.status(), StatusCode::OK);
        let page: Value = res.json().await.unwrap();
        page["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
    }

    async fn say(&self, user: &User, chat: Uuid, content: &str) -> Value {
        let body = json!({ "clientMsgId": Uuid::new_v4().to_string(), "content": content });
        let res = self.post(user, &format!("/chats/{chat}/messages"), &body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }
}

on_both_backends! {
    async fn search_finds_text_in_my_chats_only_newest_first(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let theirs = stack.direct(&carla, &dave).await;
        stack.say(&ana, direct, "Lunch at noon?").await;
        stack.say(&bob, group, "lunch moved to one").await;
        stack.say(&carla, theirs, "LUNCH is on me").await;
        stack.say(&bob, direct, "no idea").await;
        let gone = stack.say(&bob, direct, "lunch, forget it").await;
        let deleted = stack.client.delete(format!("{}/chats/{direct}/messages/{}", stack.chat_url, gone["seq"]))
            .bearer_auth(&bob.token).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::OK);

        // Ignoring case; never another's chat or a deleted message.
        assert_eq!(stack.found(&ana, "LUNCH", None).await, ["lunch moved to one", "Lunch at noon?"]);
        assert_eq!(stack.found(&ana, "lunch", Some(direct)).await, ["Lunch at noon?"]);
        assert_eq!(stack.found(&dave, "lunch", None).await, ["LUNCH is on me"]);
        assert_error(stack.search(&ana, &[("q", "lunch".into()), ("chatId", theirs.to_string())]).await, 403, "forbidden").await;
        // Over GraphQL too.
        let query = "query { searchMessages(query: \"noon\") { messages { content } hasMore } }";
        let answer = stack.graphql(Some(&ana), query, json!({})).await;
        assert_eq!(answer["data"]["searchMessages"], json!({ "messages": [{ "content": "Lunch at noon?" }], "hasMore": false }), "{answer}");
    }

    async fn search_takes_wildcards_literally_pages_back_and_refuses_bad_queries(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, _bob, chat) = stack.ana_and_bob().await;
        // Each pair: what the query means, and what it would match were `%`, `_` or `\` wildcards.
        for text in ["100% sure", "100 sure", "a_b", "axb", "back\\slash", "backslash"] {
            stack.say(&ana, chat, text).await;
        }
        assert_eq!(stack.found(&ana, "0%", None).await, ["100% sure"]);
        assert_eq!(stack.found(&ana, "a_b", None).await, ["a_b"]);
        assert_eq!(stack.found(&ana, "k\\s", None).await, ["back\\slash"]);
        assert_eq!(stack.found(&ana, "nothing like it", None).await, Vec::<String>::new());

        // One at a time, each page starting before the last one's message.
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut query = vec![("q", "sure".to_owned()), ("limit", "1".to_owned())];
            query.extend(before.clone().map(|b| ("before", b)));
            let page: Value = stack.search(&ana, &query).await.json().await.unwrap();
            let message = &page["messages"][0];
            seen.push(message["content"].as_str().unwrap().to_owned());
            before = Some(message["id"].as_str().unwrap().to_owned());
            if !page["hasMore"].as_bool().unwrap() {
                break;
            }
        }
        assert_eq!(seen, ["100 sure", "100% sure"]);

        for bad in [vec![("q", "a".to_owned())], vec![("q", "  a  ".to_owned())], vec![("q", "x".repeat(101))], vec![("q", "ok".to_owned()), ("limit", "0".to_owned())]] {
            assert_error(stack.search(&ana, &bad).await, 422, "validation_failed").await;
        }
        assert_error(stack.search(&ana, &[]).await, 422, "validation_failed").await;
        assert_error(stack.search(&ana, &[("q", "ok".into()), ("before", "yesterday".into())]).await, 422, "validation_failed").await;
    }
}
