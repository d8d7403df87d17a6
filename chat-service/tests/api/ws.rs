use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestStack, error_code, on_both_backends, store_unannounced};

on_both_backends! {
    async fn two_users_chat_both_ways(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;

        let ack = ana_ws.send_message(chat, "m1", "hi bob").await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["message"]["seq"], 1);
        let got = bob_ws.next_of("new_message").await;
        assert_eq!(got["message"]["content"], "hi bob");
        assert_eq!(got["message"]["senderId"], ana.id.to_string());
        bob_ws.send(json!({ "type": "mark_as_read", "chatId": chat, "seq": 1 })).await;
        let read = ana_ws.next_of("messages_read").await;
        assert_eq!((read["userId"].as_str(), read["seq"].as_i64()), (Some(bob.id.to_string().as_str()), Some(1)));

        let ack = bob_ws.send_message(chat, "m2", "hi ana").await;
        assert_eq!(ack["message"]["seq"], 2);
        let got = ana_ws.next_of("new_message").await;
        assert_eq!(got["message"]["content"], "hi ana");
        assert_eq!(got["message"]["seq"], 2);
    }

    async fn concurrent_senders_yield_one_gap_free_order_for_every_member(backend) {
        let stack = TestStack::spawn(backend).await;
        const SENDERS: usize = 20;
        const EACH: usize = 50;
        let mut users = Vec::new();
        for i in 0..SENDERS {
            users.push(stack.user(&format!("sender{i}")).await);
        }
        let members: Vec<_> = users[1..].iter().collect();
        let chat = stack.group(&users[0], &members).await;

        let mut listeners = Vec::new();
        for user in users.iter().take(3) {
            listeners.push(stack.connect(user).await);
        }
        let mut senders = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let mut ws = stack.connect(user).await;
            senders.push(tokio::spawn(async move {
                for n in 0..EACH {
                    let ack = ws.send_message(chat, &format!("{i}-{n}"), &format!("message {n} from {i}")).await;
                    assert_eq!(ack["type"], "ack", "{ack}");
                }
            }));
        }
        for sender in senders {
            sender.await.unwrap();
        }
        let expected: Vec<i64> = (1..=(SENDERS * EACH) as i64).collect();
        for mut listener in listeners {
            assert_eq!(listener.collect_seqs(chat, SENDERS * EACH).await, expected);
        }
    }

    async fn sends_queued_just_before_the_client_leaves_are_stored_once_in_order(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        // Ana's connection has written nothing yet: these sends start its write worker, and she
        // leaves without waiting for a single ack.
        for n in 1..=5 {
            let (id, content) = (format!("last-{n}"), format!("goodbye {n}"));
            ana_ws.send(json!({ "type": "send_message", "req": n, "chatId": chat, "clientMsgId": id, "content": content })).await;
        }
        ana_ws.stream.close(None).await.expect("closes");

        let mut heard = Vec::new();
        for _ in 1..=5 {
            let got = bob_ws.next_of("new_message").await;
            heard.push((got["message"]["seq"].as_i64(), got["message"]["clientMsgId"].as_str().map(str::to_owned)));
        }
        let expected: Vec<_> = (1..=5).map(|n| (Some(n), Some(format!("last-{n}")))).collect();
        assert_eq!(heard, expected);
        let page: Value = stack.get(&bob, &format!("/chats/{chat}/messages")).await.json().await.unwrap();
        let stored: Vec<_> = page["messages"]
            .as_array()
            .expect("a page of messages")
            .iter()
            .map(|m| (m["seq"].as_i64(), m["clientMsgId"].as_str().map(str::to_owned)))
            .collect();
        assert_eq!(stored, expected, "stored once each, in the order sent");
    }

    async fn a_retried_client_msg_id_returns_the_original(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, _bob, chat) = stack.ana_and_bob().await;
        let mut ws = stack.connect(&ana).await;
        let first = ws.send_message(chat, "same", "hello").await;
        let second = ws.send_message(chat, "same", "hello again?").await;
        assert_eq!(first["message"], second["message"]);

        // Through another door too.
        let rest = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "same", "content": "x" })).await;
        let rest: serde_json::Value = rest.json().await.unwrap();
        assert_eq!(rest, first["message"]);
        let page: serde_json::Value = stack.get(&ana, &format!("/chats/{chat}/messages")).await.json().await.unwrap();
        assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    }

    async fn a_retry_announces_a_stored_message_that_was_never_announced(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        // What an instance leaves when it stops between a commit and its publish, or when the link
        // to the database breaks after the commit: the message stored, no follower told.
        let original = store_unannounced(&stack, chat, ana.id, "lost-ack", "are you there?").await;

        // Ana never got her ack, so she sends again with the same clientMsgId.
        let ack = ana_ws.send_message(chat, "lost-ack", "are you there?").await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["message"]["id"], original.to_string(), "the retry returns the stored message");

        let got = bob_ws.next_of("new_message").await;
        assert_eq!((got["message"]["id"].as_str(), got["message"]["seq"].as_i64()), (Some(original.to_string().as_str()), Some(1)));
        // Announced again, not stored again: the next send continues the order.
        assert_eq!(ana_ws.send_message(chat, "next", "hello?").await["message"]["seq"], 2);
        assert_eq!(bob_ws.next_of("new_message").await["message"]["seq"], 2, "seq 1 reached Bob once");
    }

    async fn a_reconnecting_client_resumes_exactly_what_it_missed(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;
        for n in 0..5 {
            ana_ws.send_message(chat, &format!("before-{n}"), "before").await;
        }
        assert_eq!(bob_ws.collect_seqs(chat, 5).await, vec![1, 2, 3, 4, 5]);
        drop(bob_ws);

        for n in 0..100 {
            ana_ws.send_message(chat, &format!("while-{n}"), "while away").await;
        }
        let mut bob_ws = stack.connect_raw().await;
        bob_ws.send(json!({ "type": "auth", "token": bob.token, "resume": { chat.to_string(): 5 } })).await;
        bob_ws.next_of("ready").await;
        let resumed: Vec<i64> = bob_ws.collect_seqs(chat, 100).await;
        assert_eq!(resumed, (6..=105).collect::<Vec<_>>());
        let done = bob_ws.next_of("resumed").await;
        assert_eq!(done["chats"][chat.to_string()], 105);

        // Live messages continue right after, with nothing doubled.
        ana_ws.send_message(chat, "after", "live").await;
        assert_eq!(bob_ws.collect_seqs(chat, 1).await, vec![106]);
    }

    async fn a_resume_frame_sends_again_what_follows_its_seq_then_live_continues(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;
        for n in 0..4 {
            ana_ws.send_message(chat, &format!("m-{n}"), "hello").await;
        }
        assert_eq!(bob_ws.collect_seqs(chat, 4).await, vec![1, 2, 3, 4]);

        // A client that lost what it had after seq 1 asks again on the same connection.
        bob_ws.send(json!({ "type": "resume", "req": 9, "chats": { chat.to_string(): 1 } })).await;
        assert_eq!(bob_ws.collect_seqs(chat, 3).await, vec![2, 3, 4]);
        let done = bob_ws.next_of("resumed").await;
        assert_eq!((done["req"].clone(), done["chats"][chat.to_string()].clone()), (json!(9), json!(4)));

        ana_ws.send_message(chat, "m-4", "live").await;
        assert_eq!(bob_ws.collect_seqs(chat, 1).await, vec![5], "live continues once, nothing doubled");
    }

    async fn non_participants_are_refused(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let eve = stack.user("eve").await;
        let chat = stack.direct(&ana, &bob).await;
        let mut eve_ws = stack.connect(&eve).await;
        let err = eve_ws.send_message(chat, "x", "let me in").await;
        assert_eq!(err["type"], "error");
        assert_eq!(err["code"], "forbidden");
        eve_ws.send(json!({ "type": "resume", "req": 7, "chats": { chat.to_string(): 0 } })).await;
        let err = eve_ws.next_of("error").await;
        assert_eq!((err["code"].as_str(), err["req"].as_i64()), (Some("forbidden"), Some(7)));
        eve_ws.send(json!({ "type": "typing_start", "req": "t", "chatId": chat })).await;
        let err = eve_ws.next_of("error").await;
        assert_eq!((err["code"].as_str(), err["req"].as_str()), (Some("forbidden"), Some("t")));
        let res = stack.get(&eve, &format!("/chats/{chat}/messages")).await;
        assert_eq!(res.status().as_u16(), 403);
    }

    async fn typing_is_relayed_and_expires_by_itself(backend) {
        let stack = TestStack::spawn_with(backend, |c| c.typing_ttl_ms = 300).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut bob_ws = stack.connect(&bob).await;
        ana_ws.send(json!({ "type": "typing_start", "chatId": chat })).await;
        let typing = bob_ws.next_of("user_typing").await;
        assert_eq!((typing["userId"].as_str(), typing["typing"].as_bool()), (Some(ana.id.to_string().as_str()), Some(true)));
        // No typing_stop: the server ends it.
        let stopped = bob_ws.next_of("user_typing").await;
        assert_eq!(stopped["typing"], false);
    }

    async fn bad_frames_get_error_frames_and_the_connection_stays_usable(backend) {
        let stack = TestStack::spawn_with(backend, |c| { c.max_message_chars = 10; c.max_frame_bytes = 1024; }).await;
        let (ana, _bob, chat) = stack.ana_and_bob().await;
        let mut ws = stack.connect(&ana).await;

        ws.send_raw(Message::text("{not json")).await;
        assert_eq!(ws.next_of("error").await["code"], "invalid_frame");
        ws.send(json!({ "type": "fly", "req": 1 })).await;
        let err = ws.next_of("error").await;
        assert_eq!((err["code"].as_str(), err["req"].as_i64()), (Some("unknown_type"), Some(1)));
        // Each refusal names the member at fault, whatever its place in the frame.
        ws.send(json!({ "type": "send_message", "req": 2, "chatId": "nope", "clientMsgId": "a" })).await;
        let err = ws.next_of("error").await;
        assert_eq!(err["code"], "invalid_frame");
        assert!(err["message"].as_str().unwrap().starts_with("chatId: "), "{err}");
        ws.send(json!({ "type": "send_message", "req": 3, "chatId": chat })).await;
        let err = ws.next_of("error").await;
        assert_eq!((err["code"].as_str(), err["message"].as_str()), (Some("invalid_frame"), Some("missing field `clientMsgId`")));
        ws.send(json!({ "type": "mark_as_read", "req": 6, "seq": "4", "chatId": chat })).await;
        let err = ws.next_of("error").await;
        assert!(err["message"].as_str().unwrap().starts_with("seq: invalid type: string"), "{err}");
        ws.send(json!({ "type": "send_message", "req": 7, "chatId": chat, "clientMsgId": "b", "replyTo": "first" })).await;
        let err = ws.next_of("error").await;
        assert!(err["message"].as_str().unwrap().starts_with("replyTo: "), "{err}");
        assert_eq!(ws.send_message(chat, "long", "this is far too long").await["code"], "content_too_long");
        assert_eq!(ws.send_message(chat, "empty", "   ").await["code"], "empty_message");
        ws.send(json!({ "type": "mark_as_read", "req": 4, "chatId": chat, "seq": 99 })).await;
        assert_eq!(ws.next_of("error").await["code"], "invalid_seq");
        ws.send(json!({ "type": "resume", "req": 5, "chats": { chat.to_string(): 99 } })).await;
        assert_eq!(ws.next_of("error").await["code"], "invalid_seq");
        ws.send_raw(Message::text(json!({ "type": "ping", "pad": "x".repeat(2000) }).to_string())).await;
        assert_eq!(ws.next_of("error").await["code"], "payload_too_large");

        // Still usable, and nothing was stored by the refused frames.
        let ack = ws.send_message(chat, "ok", "fine").await;
        assert_eq!(ack["message"]["seq"], 1);
        ws.send(json!({ "type": "ping", "req": "p" })).await;
        assert_eq!(ws.next_of("pong").await["req"], "p");
    }

    async fn protocol_abuse_closes_with_documented_codes(backend) {
        let stack = TestStack::spawn_with(backend, |c| { c.ws_auth_timeout_secs = 1; c.ws_frames_per_second = 5; }).await;
        let ana = stack.user("ana").await;

        let mut silent = stack.connect_raw().await;
        assert_eq!(silent.closed_with().await, 4001, "no auth in time");

        let mut bad_token = stack.connect_raw().await;
        bad_token.send(json!({ "type": "auth", "token": "garbage" })).await;
        assert_eq!(bad_token.next_of("error").await["code"], "invalid_token");
        assert_eq!(bad_token.closed_with().await, 4001);

        let mut bad_resume = stack.connect_raw().await;
        bad_resume.send(json!({ "type": "auth", "token": ana.token, "resume": ["not", "a", "map"] })).await;
        assert_eq!(bad_resume.next_of("error").await["code"], "invalid_frame");
        assert_eq!(bad_resume.closed_with().await, 4001);

        let mut binary = stack.connect(&ana).await;
        binary.send_raw(Message::binary(vec![0u8; 16])).await;
        assert_eq!(binary.closed_with().await, 1008);

        let mut flood = stack.connect(&ana).await;
        for _ in 0..50 {
            flood.send(json!({ "type": "ping" })).await;
        }
        assert_eq!(flood.closed_with().await, 1008);
    }

    async fn message_writes_are_limited_per_user_whichever_door_they_come_through(backend) {
        // One write a second, a burst of two: every refusal below comes within the first second.
        let stack = TestStack::spawn_with(backend, |c| c.user_writes_per_second = 1).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ws = stack.connect(&ana).await;
        assert_eq!(ws.send_message(chat, "one", "one").await["message"]["seq"], 1);
        let res = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "two", "content": "two" })).await;
        assert_eq!(res.status(), 201);

        // The budget is Ana's, not her connection's: REST, the WebSocket and GraphQL all refuse.
        let res = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "three", "content": "three" })).await;
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
        ws.send(json!({ "type": "send_message", "req": "r", "chatId": chat, "clientMsgId": "four", "content": "four" })).await;
        let refused = ws.next_of("error").await;
        assert_eq!((&refused["req"], &refused["code"], &refused["retryAfter"]), (&json!("r"), &json!("rate_limited"), &json!(1)));
        let edit = stack.client.patch(format!("{}/chats/{chat}/messages/1", stack.chat_url)).bearer_auth(&ana.token);
        assert_eq!(edit.json(&json!({ "content": "one, edited" })).send().await.unwrap().status(), 429);
        let react = "mutation($chat: UUID!) { addReaction(chatId: $chat, seq: 1, emoji: \"👍\") { seq } }";
        let answer = stack.graphql(Some(&ana), react, json!({ "chat": chat })).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "rate_limited", "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["retryAfter"], 1, "{answer}");

        // Others write on; the connection stays usable; nothing refused was stored.
        let res = stack.post(&bob, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "b", "content": "bob's" })).await;
        assert_eq!(res.json::<Value>().await.unwrap()["seq"], 3);
        ws.send(json!({ "type": "ping", "req": "p" })).await;
        assert_eq!(ws.next_of("pong").await["req"], "p");
        let history: Value = stack.get(&bob, &format!("/chats/{chat}/messages")).await.json().await.unwrap();
        let contents: Vec<&Value> = history["messages"].as_array().unwrap().iter().map(|m| &m["content"]).collect();
        assert_eq!(contents, [&json!("one"), &json!("two"), &json!("bob's")]);
        assert_eq!(history["messages"][0].get("reactions"), None, "no reaction was stored");
    }

    async fn a_user_holds_only_so_many_connections_and_subscriptions_on_an_instance(backend) {
        let stack = TestStack::spawn_with(backend, |c| c.max_connections_per_user = 2).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let first = stack.connect(&ana).await;
        let mut gql = stack.graphql_ws(&ana).await;
        let typing = "subscription($chat: UUID!) { typing(chatId: $chat) { userId typing } }";
        gql.subscribe("typing", typing, json!({ "chat": chat })).await;
        stack.wait_for_connections(&ana, 2).await;

        // A third, of either kind, is refused; Bob's are not.
        let mut third = stack.connect_raw().await;
        third.send(json!({ "type": "auth", "token": ana.token })).await;
        assert_eq!(third.next_of("error").await["code"], "rate_limited");
        assert_eq!(third.closed_with().await, 4029);
        gql.subscribe("more", typing, json!({ "chat": chat })).await;
        assert_eq!(error_code(&gql.next_payload("more").await), "rate_limited");
        let _bob = stack.connect(&bob).await;

        // Closing one makes room again.
        drop(first);
        stack.wait_for_exactly_connections(&ana, 1).await;
        let mut again = stack.connect(&ana).await;
        again.send(json!({ "type": "ping", "req": "p" })).await;
        assert_eq!(again.next_of("pong").await["req"], "p");
    }

    async fn presence_is_shared_only_in_chats_up_to_the_size_limit(backend) {
        let stack = TestStack::spawn_with(backend, |c| c.presence_max_chat_members = 2).await;
        let ([ana, bob, carla], _group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let presence_of = |frame: serde_json::Value| (frame["chatId"].clone(), frame["online"].clone());

        // Ana is there first, so Bob's coming online is a flip she hears (had she connected after
        // him, the announcement could reach her after a `ready` that already lists him).
        let mut ana_ws = stack.connect_raw().await;
        ana_ws.send(json!({ "type": "auth", "token": ana.token })).await;
        assert_eq!(ana_ws.next_of("ready").await["online"], json!([]), "nobody else is online yet");
        let bob_ws = stack.connect(&bob).await;
        assert_eq!(presence_of(ana_ws.next_of("presence").await), (json!(direct), json!(true)));

        let mut ana_tab = stack.connect_raw().await;
        ana_tab.send(json!({ "type": "auth", "token": ana.token })).await;
        assert_eq!(ana_tab.next_of("ready").await["online"], json!([bob.id]), "Bob shares a direct chat with Ana");
        let mut carla_ws = stack.connect_raw().await;
        carla_ws.send(json!({ "type": "auth", "token": carla.token })).await;
        assert_eq!(carla_ws.next_of("ready").await["online"], json!([]), "Carla shares only the large group with them");

        // Bob goes and comes back: Ana hears it once per flip, in the direct chat only (both
        // offline announcements would be published before either online one).
        drop(bob_ws);
        assert_eq!(presence_of(ana_ws.next_of("presence").await), (json!(direct), json!(false)));
        let _bob_ws = stack.connect(&bob).await;
        assert_eq!(presence_of(ana_ws.next_of("presence").await), (json!(direct), json!(true)));
    }

    async fn a_big_groups_reads_reach_only_the_readers_own_connections(backend) {
        let stack = TestStack::spawn_with(backend, |c| c.read_receipts_max_chat_members = 2).await;
        let ([ana, bob, _carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let mut ana_ws = stack.connect_raw().await;
        ana_ws.send(json!({ "type": "auth", "token": ana.token })).await;
        let ready = ana_ws.next_of("ready").await;
        assert_eq!(ready["readReceiptsMaxChatMembers"], 2, "a client learns where it shows no read count: {ready}");
        let mut bob_ws = stack.connect(&bob).await;
        let mut bob_tab = stack.connect(&bob).await;
        assert_eq!(ana_ws.send_message(group, "g1", "to the group").await["message"]["seq"], 1);
        assert_eq!(ana_ws.send_message(direct, "d1", "to bob").await["message"]["seq"], 1);

        bob_ws.send(json!({ "type": "mark_as_read", "chatId": group, "seq": 1 })).await;
        let read = bob_tab.next_of("messages_read").await;
        assert_eq!((&read["chatId"], &read["userId"], &read["seq"]), (&json!(group), &json!(bob.id), &json!(1)));
        assert_eq!(bob_ws.next_of("messages_read").await["chatId"], json!(group), "the reader's own connection too");

        // The direct chat is small: there everyone hears of the read. Ana's next receipt must be
        // that one — the group's read, published before it on the same relay, never reached her.
        bob_ws.send(json!({ "type": "mark_as_read", "chatId": direct, "seq": 1 })).await;
        let heard = ana_ws.next_of("messages_read").await;
        assert_eq!((&heard["chatId"], &heard["userId"]), (&json!(direct), &json!(bob.id)), "{heard}");
        let stored = stack.get(&ana, &format!("/chats/{group}")).await.json::<serde_json::Value>().await.unwrap();
        let bobs = stored["participants"].as_array().unwrap().iter().find(|p| p["userId"] == json!(bob.id)).unwrap();
        assert_eq!(bobs["lastReadSeq"], 1, "the watermark is stored all the same: {stored}");
    }

    async fn clients_connecting_at_once_each_get_their_own_chats_then_live_messages(backend) {
        let stack = TestStack::spawn(backend).await;
        let mut users = Vec::new();
        for i in 0..8 {
            users.push(stack.user(&format!("arriving{i}")).await);
        }
        let others: Vec<_> = users[1..].iter().collect();
        let group = stack.group(&users[0], &others).await;
        let pairs = [(0, 1), (2, 3), (4, 5)];
        let mut directs = Vec::new();
        for (a, b) in pairs {
            directs.push(stack.direct(&users[a], &users[b]).await);
        }
        for n in 0..3 {
            let body = json!({ "clientMsgId": format!("g{n}"), "content": "to the group" });
            assert!(stack.post(&users[0], &format!("/chats/{group}/messages"), &body).await.status().is_success());
        }
        for n in 0..2 {
            let body = json!({ "clientMsgId": format!("d{n}"), "content": "to three" });
            assert!(stack.post(&users[2], &format!("/chats/{}/messages", directs[1]), &body).await.status().is_success());
        }

        // Every start is under way at once, so the service serves them together.
        let connected = futures_util::future::join_all(users.iter().map(|user| async {
            let mut ws = stack.connect_raw().await;
            ws.send(json!({ "type": "auth", "token": user.token })).await;
            let ready = ws.next_of("ready").await;
            (ws, ready)
        }))
        .await;
        let (mut clients, readies): (Vec<_>, Vec<_>) = connected.into_iter().unzip();
        for (i, ready) in readies.iter().enumerate() {
            assert_eq!(ready["user"]["id"], users[i].id.to_string());
            let mut expected: Vec<(String, i64, i64)> = vec![(group.to_string(), 3, if i == 0 { 0 } else { 3 })];
            for ((a, b), chat) in pairs.iter().zip(&directs) {
                if i == *a || i == *b {
                    let (last, unread) = if *chat == directs[1] { (2, i64::from(i == 3) * 2) } else { (0, 0) };
                    expected.push((chat.to_string(), last, unread));
                }
            }
            let mut got: Vec<(String, i64, i64)> = ready["chats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["id"].as_str().unwrap().to_owned(), c["lastSeq"].as_i64().unwrap(), c["unreadCount"].as_i64().unwrap()))
                .collect();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "user {i}'s ready lists exactly their chats");
            let group_view = ready["chats"].as_array().unwrap().iter().find(|c| c["id"] == group.to_string()).unwrap();
            assert_eq!(group_view["participants"].as_array().unwrap().len(), 8);
            assert_eq!(group_view["lastMessage"]["clientMsgId"], "g2");
        }

        // Each connection follows its chats from the moment its views were read. Sent over REST:
        // a WebSocket sender's own echo may come before its ack, which `send_message` skips.
        let body = json!({ "clientMsgId": "g3", "content": "live" });
        assert!(stack.post(&users[0], &format!("/chats/{group}/messages"), &body).await.status().is_success());
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_eq!(ws.collect_seqs(group, 1).await, vec![4], "user {i} hears the group live");
        }
        clients[4].send_message(directs[2], "d-live", "live").await;
        assert_eq!(clients[5].collect_seqs(directs[2], 1).await, vec![1]);
    }

    async fn a_member_of_more_chats_than_one_query_names_gets_them_all(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, direct) = stack.ana_and_bob().await;
        // Views read ids in chunks of 1 000: this crosses one.
        let mut groups = Vec::new();
        for _ in 0..1000 {
            groups.push(stack.group(&ana, &[&bob]).await);
        }
        let last = *groups.last().unwrap();
        let mut bob_ws = stack.connect_raw().await;
        bob_ws.send(json!({ "type": "auth", "token": bob.token })).await;
        let ready = bob_ws.next_of("ready").await;
        let mut listed: Vec<String> = ready["chats"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
        let mut expected: Vec<String> = groups.iter().chain([&direct]).map(ToString::to_string).collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
        let page: Value = stack.get(&bob, "/chats").await.json().await.unwrap();
        assert_eq!(page.as_array().map(Vec::len), Some(1001), "REST lists them all too");

        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(last, "late", "in the last chat").await;
        assert_eq!(bob_ws.collect_seqs(last, 1).await, vec![1]);
    }

    async fn a_new_chat_reaches_its_members_live(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        let chat = stack.direct(&ana, &bob).await;
        let created = bob_ws.next_of("conversation_created").await;
        assert_eq!(created["chat"]["id"], chat.to_string());
        assert_eq!(created["online"], json!([ana.id]), "the new chat comes with who in it is online");
        ana_ws.send_message(chat, "1", "hello").await;
        assert_eq!(bob_ws.next_of("new_message").await["message"]["content"], "hello");
    }

    async fn members_hear_who_joins_and_leaves_a_group(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let cat = stack.user("cat").await;
        let chat = stack.group(&ana, &[&bob]).await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut cat_ws = stack.connect(&cat).await;

        let res = stack.post(&ana, &format!("/chats/{chat}/participants"), &json!({ "userIds": [cat.id] })).await;
        assert_eq!(res.status().as_u16(), 200);
        let joined = bob_ws.next_of("participant_joined").await;
        assert_eq!(joined, json!({ "type": "participant_joined", "chatId": chat, "userId": cat.id }));
        assert_eq!(cat_ws.next_of("conversation_created").await["chat"]["id"], chat.to_string());

        let res = stack.post(&cat, &format!("/chats/{chat}/leave"), &json!({})).await;
        assert_eq!(res.status().as_u16(), 204);
        let left = bob_ws.next_of("participant_left").await;
        assert_eq!(left, json!({ "type": "participant_left", "chatId": chat, "userId": cat.id }));
        assert_eq!(cat_ws.next_of("conversation_left").await["chatId"], chat.to_string());
    }

    async fn a_connection_that_ends_leaves_its_feeds_and_no_others(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let cat = stack.user("cat").await;
        let shared = stack.group(&ana, &[&bob]).await;
        let anas_only = stack.group(&ana, &[&cat]).await;
        let bobs_only = stack.group(&bob, &[&cat]).await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        stack.wait_for_exactly_followers(shared, 2).await;
        stack.wait_for_exactly_followers(anas_only, 1).await;

        ana_ws.stream.close(None).await.expect("close frame sent");
        stack.wait_for_exactly_followers(shared, 1).await;
        stack.wait_for_exactly_followers(anas_only, 0).await;
        assert_eq!(stack.chat.hub.followers(bobs_only), 1, "a chat Ana is not in keeps its follower");

        // Bob's feeds carry on: he still hears both of his chats live.
        for (chat, sender) in [(shared, &ana), (bobs_only, &cat)] {
            let body = json!({ "clientMsgId": format!("after-{chat}"), "content": "still here" });
            let res = stack.post(sender, &format!("/chats/{chat}/messages"), &body).await;
            assert_eq!(res.status().as_u16(), 201);
            let got = bob_ws.next_of("new_message").await;
            assert_eq!((got["message"]["chatId"].as_str(), got["message"]["content"].as_str()), (Some(chat.to_string().as_str()), Some("still here")));
        }
    }

    async fn chatting_carries_on_while_user_service_is_down(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let cat = stack.user("cat").await;
        let chat = stack.direct(&ana, &bob).await;
        let mut ana_ws = stack.connect(&ana).await;

        stack.users_handle.stop(true).await;
        assert!(stack.client.get(format!("{}/health", stack.users_url)).send().await.is_err(), "user-service is down");

        // Tokens verify with the cached keys, known users need no lookup.
        let mut bob_ws = stack.connect(&bob).await;
        assert_eq!(ana_ws.send_message(chat, "while-down", "still here?").await["type"], "ack");
        assert_eq!(bob_ws.next_of("new_message").await["message"]["content"], "still here?");
        let chats: Value = stack.get(&bob, "/chats").await.json().await.unwrap();
        assert_eq!(chats[0]["participants"].as_array().unwrap().len(), 2);
        // A user chat-service has never met cannot be checked: a clear 503, nothing created.
        let res = stack.post(&ana, "/chats", &json!({ "kind": "direct", "participantIds": [cat.id] })).await;
        assert_eq!(res.status().as_u16(), 503);
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "unavailable");
        let chats: Value = stack.get(&ana, "/chats").await.json().await.unwrap();
        assert_eq!(chats.as_array().unwrap().len(), 1);
    }

    async fn shutdown_tells_clients_to_reconnect_elsewhere(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let mut ws = stack.connect(&ana).await;
        let shutdown = stack.chat_shutdown.clone();
        let stopping = tokio::spawn(async move { shutdown.shutdown().await });
        assert_eq!(ws.closed_with().await, 1012);
        stopping.await.unwrap();
    }

    async fn a_worker_at_its_connection_limit_takes_the_next_once_one_closes(backend) {
        let stack = TestStack::spawn_with(backend, |c| {
            c.http_workers = 1;
            c.max_connections_per_worker = 1;
        }).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let mut first = stack.connect(&ana).await;
        let ws_url = stack.ws_url.clone();
        let mut second = tokio::spawn(async move { tokio_tungstenite::connect_async(ws_url.as_str()).await });
        // The worker holds its one connection: the next waits in the listen backlog, unanswered.
        let answered = tokio::time::timeout(std::time::Duration::from_millis(500), &mut second).await;
        assert!(answered.is_err(), "a second connection was served past the limit");
        first.stream.close(None).await.unwrap();
        let (stream, _) = second.await.unwrap().expect("served once the first closed");
        let mut second = crate::helpers::WsClient { stream };
        second.send(json!({ "type": "auth", "token": bob.token })).await;
        assert_eq!(second.next_of("ready").await["user"]["id"], bob.id.to_string());
    }

    async fn a_stalled_reader_is_cut_off_while_the_others_keep_receiving(backend) {
        let stack = TestStack::spawn_with(backend, |c| {
            c.ws_outbound_queue = 8;
            c.max_message_chars = 60_000;
            c.max_frame_bytes = 128 * 1024;
        }).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let cat = stack.user("cat").await;
        let chat = stack.group(&ana, &[&bob, &cat]).await;
        // Bob authenticates, then never reads again.
        let mut stalled = stack.connect(&bob).await;
        let mut healthy = stack.connect(&cat).await;
        const MESSAGES: usize = 150;
        let reader = tokio::spawn(async move { healthy.collect_seqs(chat, MESSAGES).await });
        let mut sender = stack.connect(&ana).await;
        let big = "x".repeat(60_000);
        for n in 0..MESSAGES {
            assert_eq!(sender.send_message(chat, &n.to_string(), &big).await["type"], "ack");
        }
        assert_eq!(reader.await.unwrap(), (1..=MESSAGES as i64).collect::<Vec<_>>());
        // Once Bob reads again, what was queued drains and the connection ends with "too slow".
        assert_eq!(stalled.closed_with().await, 4008);
    }
}
