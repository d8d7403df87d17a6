//! The GraphQL door: queries, mutations, and subscriptions over `graphql-transport-ws`, sharing
//! one message stream with the WebSocket gateway.

use serde_json::{Value, json};

use crate::helpers::{TestStack, error_code, on_both_backends};

const MESSAGE_ADDED: &str = "subscription($chat: UUID!, $after: Int) { messageAdded(chatId: $chat, afterSeq: $after) { seq content senderId clientMsgId } }";
const SEND: &str = "mutation($chat: UUID!, $id: String!, $text: String!) {
    sendMessage(chatId: $chat, input: { clientMsgId: $id, content: $text }) { seq content } }";

on_both_backends! {
    async fn subscription_receives_a_message_sent_over_the_websocket(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "warm", "content": "first" })).await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("1", MESSAGE_ADDED, json!({ "chat": chat, "after": 0 })).await;
        // The backlog is read after the subscription follows the chat: once it arrives, it is live.
        assert_eq!(bob_gql.next_payload("1").await["data"]["messageAdded"]["seq"], 1);

        let mut ana_ws = stack.connect(&ana).await;
        let ack = ana_ws.send_message(chat, "ws-1", "over the websocket").await;
        assert_eq!(ack["type"], "ack", "{ack}");

        let got = bob_gql.next_payload("1").await["data"]["messageAdded"].clone();
        assert_eq!(got["seq"], 2);
        assert_eq!(got["content"], "over the websocket");
        assert_eq!(got["senderId"], ana.id.to_string());
    }

    async fn websocket_receives_a_message_sent_by_the_graphql_mutation(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;

        let sent = stack.graphql(Some(&ana), SEND, json!({ "chat": chat, "id": "g-1", "text": "over graphql" })).await;
        assert_eq!(sent["data"]["sendMessage"]["seq"], 1, "{sent}");

        let got = bob_ws.next_of("new_message").await;
        assert_eq!(got["message"]["content"], "over graphql");
        assert_eq!(got["message"]["seq"], 1);
        // A retry with the same clientMsgId, through another door, is the same message.
        let retried = ana_ws_retry(&stack, &ana, chat).await;
        assert_eq!(retried["message"]["seq"], 1);
        assert_eq!(retried["message"]["content"], "over graphql");
    }

    async fn message_added_resumes_after_a_seq_then_continues_live(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        for i in 1..=5 {
            let res = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": format!("m{i}"), "content": format!("message {i}") })).await;
            assert!(res.status().is_success());
        }
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("resume", MESSAGE_ADDED, json!({ "chat": chat, "after": 2 })).await;
        let mut seqs = Vec::new();
        for _ in 0..3 {
            seqs.push(bob_gql.next_payload("resume").await["data"]["messageAdded"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seqs, vec![3, 4, 5]);
        stack.graphql(Some(&ana), SEND, json!({ "chat": chat, "id": "m6", "text": "live" })).await;
        let live = bob_gql.next_payload("resume").await["data"]["messageAdded"].clone();
        assert_eq!((live["seq"].as_i64(), live["content"].as_str()), (Some(6), Some("live")));
    }

    async fn typing_and_read_receipts_reach_subscribers(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        stack.graphql(Some(&bob), SEND, json!({ "chat": chat, "id": "b1", "text": "hello" })).await;
        let mut ana_gql = stack.graphql_ws(&ana).await;
        ana_gql.subscribe("typing", "subscription($chat: UUID!) { typing(chatId: $chat) { userId typing } }", json!({ "chat": chat })).await;
        ana_gql.subscribe("receipts", "subscription($chat: UUID!) { readReceipts(chatId: $chat) { userId seq kind } }", json!({ "chat": chat })).await;
        stack.wait_for_followers(chat, 2).await;
        let marked = stack.graphql(Some(&ana), "mutation($chat: UUID!) { markAsRead(chatId: $chat, seq: 1) }", json!({ "chat": chat })).await;
        assert_eq!(marked["data"]["markAsRead"], true, "{marked}");
        assert_eq!(ana_gql.next_payload("receipts").await["data"]["readReceipts"]["userId"], ana.id.to_string());

        let mut bob_ws = stack.connect(&bob).await;
        bob_ws.send(json!({ "type": "typing_start", "chatId": chat })).await;
        let typing = ana_gql.next_payload("typing").await["data"]["typing"].clone();
        assert_eq!((typing["userId"].as_str(), typing["typing"].as_bool()), (Some(bob.id.to_string().as_str()), Some(true)));

        stack.graphql(Some(&ana), SEND, json!({ "chat": chat, "id": "a1", "text": "hi" })).await;
        bob_ws.send(json!({ "type": "mark_as_read", "chatId": chat, "seq": 2 })).await;
        let receipt = ana_gql.next_payload("receipts").await["data"]["readReceipts"].clone();
        assert_eq!(receipt, json!({ "userId": bob.id.to_string(), "seq": 2, "kind": "READ" }));
    }

    async fn a_chats_receipts_leave_out_the_users_reads_of_a_big_group(backend) {
        let stack = TestStack::spawn_with(backend, |c| c.read_receipts_max_chat_members = 2).await;
        let ([ana, bob, _carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        for chat in [group, direct] {
            stack.graphql(Some(&bob), SEND, json!({ "chat": chat, "id": "b1", "text": "hello" })).await;
        }
        let mut ana_gql = stack.graphql_ws(&ana).await;
        let receipts = "subscription($chat: UUID!) { readReceipts(chatId: $chat) { chatId userId seq kind } }";
        ana_gql.subscribe("receipts", receipts, json!({ "chat": direct })).await;
        stack.wait_for_followers(direct, 1).await;

        // Ana's read of the big group goes to her own connections, this subscription's among them;
        // it is not a receipt of the direct chat. Her read of the direct chat, which follows, is.
        let mark = "mutation($chat: UUID!) { markAsRead(chatId: $chat, seq: 1) }";
        for chat in [group, direct] {
            assert_eq!(stack.graphql(Some(&ana), mark, json!({ "chat": chat })).await["data"]["markAsRead"], true);
        }
        let receipt = ana_gql.next_payload("receipts").await["data"]["readReceipts"].clone();
        assert_eq!(receipt, json!({ "chatId": direct, "userId": ana.id, "seq": 1, "kind": "READ" }));
    }

    async fn queries_list_chats_and_page_history_by_seq(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let created = stack.graphql(Some(&ana), "mutation($bob: UUID!) { createChat(input: { kind: DIRECT, participantIds: [$bob] }) { id kind } }", json!({ "bob": bob.id })).await;
        let chat = created["data"]["createChat"]["id"].as_str().unwrap().to_owned();
        for i in 1..=7 {
            stack.graphql(Some(&ana), SEND, json!({ "chat": chat, "id": format!("m{i}"), "text": format!("m{i}") })).await;
        }
        let chats = stack.graphql(Some(&bob), "{ chats { id lastSeq unreadCount lastMessage { content } } }", json!({})).await;
        assert_eq!(chats["data"]["chats"], json!([{ "id": chat, "lastSeq": 7, "unreadCount": 7, "lastMessage": { "content": "m7" } }]));

        let page = "query($chat: UUID!, $first: Int, $after: String, $last: Int, $before: String) {
            messages(chatId: $chat, first: $first, after: $after, last: $last, before: $before) {
                edges { cursor node { seq } } pageInfo { hasNextPage hasPreviousPage endCursor startCursor } } }";
        let newest = stack.graphql(Some(&bob), page, json!({ "chat": chat, "last": 3 })).await;
        let seqs = |v: &Value| v["data"]["messages"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["seq"].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(seqs(&newest), vec![5, 6, 7]);
        assert_eq!(newest["data"]["messages"]["pageInfo"]["hasPreviousPage"], true);
        let before = newest["data"]["messages"]["pageInfo"]["startCursor"].as_str().unwrap().to_owned();
        let older = stack.graphql(Some(&bob), page, json!({ "chat": chat, "last": 10, "before": before })).await;
        assert_eq!(seqs(&older), vec![1, 2, 3, 4]);
        assert_eq!(older["data"]["messages"]["pageInfo"]["hasPreviousPage"], false);

        let forward = stack.graphql(Some(&bob), page, json!({ "chat": chat, "first": 4 })).await;
        assert_eq!(seqs(&forward), vec![1, 2, 3, 4]);
        assert_eq!(forward["data"]["messages"]["pageInfo"]["hasNextPage"], true);
        let after = forward["data"]["messages"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
        let rest = stack.graphql(Some(&bob), page, json!({ "chat": chat, "first": 4, "after": after })).await;
        assert_eq!(seqs(&rest), vec![5, 6, 7]);
        assert_eq!(rest["data"]["messages"]["pageInfo"]["hasNextPage"], false);

        let one = stack.graphql(Some(&bob), "query($chat: UUID!) { chat(id: $chat) { kind participants { userId } } }", json!({ "chat": chat })).await;
        assert_eq!(one["data"]["chat"]["kind"], "DIRECT");
        assert_eq!(one["data"]["chat"]["participants"].as_array().unwrap().len(), 2);
    }

    async fn graphql_refuses_strangers_and_bad_input_with_stable_codes(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let eve = stack.user("eve").await;
        let chat = stack.direct(&ana, &bob).await;

        let anonymous = stack.graphql(None, "{ chats { id } }", json!({})).await;
        assert_eq!(error_code(&anonymous), "unauthorized");
        let stranger = stack.graphql(Some(&eve), SEND, json!({ "chat": chat, "id": "x", "text": "let me in" })).await;
        assert_eq!(error_code(&stranger), "forbidden");
        let empty = stack.graphql(Some(&ana), SEND, json!({ "chat": chat, "id": "x", "text": "   " })).await;
        assert_eq!(error_code(&empty), "empty_message");
        let future = stack.graphql(Some(&ana), "mutation($chat: UUID!) { markAsRead(chatId: $chat, seq: 99) }", json!({ "chat": chat })).await;
        assert_eq!(error_code(&future), "invalid_seq");
        let paging = "query($chat: UUID!, $after: String, $first: Int) { messages(chatId: $chat, after: $after, first: $first) { edges { cursor } } }";
        let bad_cursor = stack.graphql(Some(&ana), paging, json!({ "chat": chat, "after": "zzz" })).await;
        assert_eq!((error_code(&bad_cursor), bad_cursor["errors"][0]["extensions"]["fields"]["after"].is_string()), ("validation_failed", true), "{bad_cursor}");
        let too_many = stack.graphql(Some(&ana), paging, json!({ "chat": chat, "first": 1000 })).await;
        assert_eq!((error_code(&too_many), too_many["errors"][0]["extensions"]["fields"]["first"].is_string()), ("validation_failed", true), "{too_many}");
        let malformed = stack.client.post(format!("{}/graphql", stack.chat_url)).header("content-type", "application/json").body("not json").send().await.unwrap();
        assert_eq!(malformed.status().as_u16(), 400);
        assert_eq!(malformed.json::<Value>().await.unwrap()["error"]["code"], "bad_request");
        let history = stack.get(&ana, &format!("/chats/{chat}/messages")).await.json::<Value>().await.unwrap();
        assert_eq!(history["messages"], json!([]), "refused sends stored nothing");

        let mut eve_gql = stack.graphql_ws(&eve).await;
        eve_gql.subscribe("spy", MESSAGE_ADDED, json!({ "chat": chat })).await;
        let refused = eve_gql.next_payload("spy").await;
        assert_eq!(error_code(&refused), "forbidden", "{refused}");

        let mut ana_gql = stack.graphql_ws(&ana).await;
        ana_gql.subscribe("future", MESSAGE_ADDED, json!({ "chat": chat, "after": 5 })).await;
        assert_eq!(error_code(&ana_gql.next_payload("future").await), "invalid_seq");

        // async-graphql ends a refused connection_init with 1002 and the error's message as reason.
        let mut no_token = stack.graphql_ws_raw(json!({})).await;
        assert_eq!(no_token.closed_with().await, 1002);
        let mut bad_token = stack.graphql_ws_raw(json!({ "token": "not-a-token" })).await;
        assert_eq!(bad_token.closed_with().await, 1002);
    }

    async fn delivery_moves_the_recipients_delivered_watermark(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;

        let ack = ana_ws.send_message(chat, "d1", "did you get this?").await;
        assert_eq!(ack["message"]["seq"], 1);
        bob_ws.next_of("new_message").await;
        let delivered = ana_ws.next_of("messages_delivered").await;
        assert_eq!(delivered, json!({ "type": "messages_delivered", "chatId": chat, "seq": 1 }), "everyone has seq 1");
        let view = stack.get(&ana, &format!("/chats/{chat}")).await.json::<Value>().await.unwrap();
        let bob_view = view["participants"].as_array().unwrap().iter().find(|p| p["userId"] == bob.id.to_string()).unwrap().clone();
        assert_eq!((bob_view["lastDeliveredSeq"].as_i64(), bob_view["lastReadSeq"].as_i64()), (Some(1), Some(0)));
    }
}

/// Sends Ana's `g-1` again over the WebSocket and returns the ack.
async fn ana_ws_retry(stack: &TestStack, ana: &crate::helpers::User, chat: uuid::Uuid) -> Value {
    let mut ws = stack.connect(ana).await;
    ws.send_message(chat, "g-1", "over graphql").await
}

#[test]
fn exported_sdl_matches_the_schema() {
    let exported = include_str!("../../../docs/chat-service.graphql");
    assert!(
        chat_service::graphql::sdl() == exported,
        "docs/chat-service.graphql is out of date; regenerate it with \
         `cargo run -p chat-service -- sdl > docs/chat-service.graphql`"
    );
}
