//! Edits, deletions and reactions: a message changes in place, every follower hears of it,
//! history shows it as it is now, and a client that was away resumes the changes after its last
//! `editSeq`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::helpers::*;

impl TestStack {
    async fn patch_message(&self, user: &User, chat: Uuid, seq: i64, body: &Value) -> reqwest::Response {
        let url = format!("{}/chats/{chat}/messages/{seq}", self.chat_url);
        self.client.patch(url).bearer_auth(&user.token).json(body).send().await.unwrap()
    }

    async fn delete_message(&self, user: &User, chat: Uuid, seq: i64) -> reqwest::Response {
        let url = format!("{}/chats/{chat}/messages/{seq}", self.chat_url);
        self.client.delete(url).bearer_auth(&user.token).send().await.unwrap()
    }

    /// The chat's messages as REST history gives them.
    async fn history(&self, user: &User, chat: Uuid) -> Vec<Value> {
        let page: Value = self.get(user, &format!("/chats/{chat}/messages")).await.json().await.unwrap();
        page["messages"].as_array().unwrap().clone()
    }

    async fn reaction(&self, user: &User, chat: Uuid, seq: i64, emoji: &str, on: bool) -> reqwest::Response {
        // The emoji as one path segment, percent-encoded.
        let mut url = reqwest::Url::parse(&format!("{}/chats/{chat}/messages/{seq}/reactions", self.chat_url)).unwrap();
        url.path_segments_mut().unwrap().push(emoji);
        let request = if on { self.client.put(url) } else { self.client.delete(url) };
        request.bearer_auth(&user.token).send().await.unwrap()
    }

    async fn last_edit_seq(&self, user: &User, chat: Uuid) -> i64 {
        let chat: Value = self.get(user, &format!("/chats/{chat}")).await.json().await.unwrap();
        chat["lastEditSeq"].as_i64().unwrap()
    }
}

async fn ok_json(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

impl WsClient {
    /// The answer (`ack` or `error`) to the frame sent with `req`, skipping events.
    async fn answer_to(&mut self, req: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["req"] == req && (frame["type"] == "ack" || frame["type"] == "error") {
                return frame;
            }
        }
    }
}

on_both_backends! {
    async fn an_edit_reaches_every_follower_and_history_gives_the_message_as_it_is_now(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        let mut ana_other = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "see you at 3").await;
        ana_ws.send_message(chat, "m2", "room 4B").await;
        assert_eq!(bob_ws.collect_seqs(chat, 2).await, [1, 2]);

        ana_ws.send(json!({ "type": "edit_message", "req": "e1", "chatId": chat, "seq": 2, "content": "room 4C" })).await;
        // The editing connection gets the ack and the update, in either order.
        let (mut ack, mut echo) = (None, None);
        while ack.is_none() || echo.is_none() {
            let frame = ana_ws.next().await;
            match frame["type"].as_str() {
                Some("ack") => ack = Some(frame),
                Some("message_updated") => echo = Some(frame),
                // The echoes of Ana's own sends.
                Some("new_message") => {}
                _ => panic!("unexpected {frame}"),
            }
        }
        let (ack, echo) = (ack.unwrap(), echo.unwrap());
        assert_eq!(ack["req"], "e1", "{ack}");
        let edited = &ack["message"];
        assert_eq!(echo["message"], *edited);
        assert_eq!((edited["seq"].as_i64(), edited["content"].as_str(), edited["editSeq"].as_i64()), (Some(2), Some("room 4C"), Some(1)));
        assert!(edited["editedAt"].is_string() && edited.get("deletedAt").is_none(), "{edited}");
        assert_eq!(edited["clientMsgId"], "m2", "the message keeps its identity");
        // Every follower, the editor's other connection included, gets the message as it is now.
        assert_eq!(bob_ws.next_of("message_updated").await["message"], *edited);
        assert_eq!(ana_other.next_of("message_updated").await["message"], *edited);

        // Over REST too; the same content again changes nothing and announces nothing.
        let patched = ok_json(stack.patch_message(&ana, chat, 1, &json!({ "content": "see you at 4" })).await).await;
        assert_eq!((patched["content"].as_str(), patched["editSeq"].as_i64()), (Some("see you at 4"), Some(2)));
        let unchanged = ok_json(stack.patch_message(&ana, chat, 1, &json!({ "content": "see you at 4" })).await).await;
        assert_eq!(unchanged, patched);
        assert_eq!(bob_ws.next_of("message_updated").await["message"], patched);
        let deleted = ok_json(stack.delete_message(&ana, chat, 2).await).await;
        // The next update Bob hears of is the deletion: the repeated edit sent none.
        assert_eq!(bob_ws.next_of("message_updated").await["message"], deleted);
        assert_eq!((deleted["content"].as_str(), deleted["editSeq"].as_i64()), (Some(""), Some(3)));
        assert!(deleted["deletedAt"].is_string(), "{deleted}");

        // The seqs did not move: history, the chat and Bob's unread count are as before the changes.
        let history = stack.history(&bob, chat).await;
        assert_eq!(history, [patched.clone(), deleted.clone()]);
        let viewed: Value = stack.get(&bob, &format!("/chats/{chat}")).await.json().await.unwrap();
        assert_eq!((viewed["lastSeq"].as_i64(), viewed["lastEditSeq"].as_i64()), (Some(2), Some(3)));
        assert_eq!(viewed["lastMessage"], deleted);
        // A new message after the changes takes the next seq, as ever.
        assert_eq!(ana_ws.send_message(chat, "m3", "found it").await["message"]["seq"], 3);
        // A new connection's ready carries where the chat's changes stand.
        let mut fresh = stack.connect_raw().await;
        fresh.send(json!({ "type": "auth", "token": bob.token })).await;
        assert_eq!(fresh.next_of("ready").await["chats"][0]["lastEditSeq"], 3);
    }

    async fn only_its_sender_edits_a_message_and_its_sender_or_a_group_admin_deletes_it(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let mut bob_ws = stack.connect(&bob).await;
        bob_ws.send_message(group, "g1", "hello group").await;
        bob_ws.send_message(group, "g2", "second").await;
        bob_ws.send_message(direct, "d1", "hello ana").await;
        let edit = json!({ "content": "changed" });

        // Ana owns the group: she may delete Bob's message there, not edit it.
        assert_error(stack.patch_message(&ana, group, 1, &edit).await, 403, "forbidden").await;
        assert_error(stack.delete_message(&carla, group, 1).await, 403, "forbidden").await;
        assert_error(stack.delete_message(&ana, direct, 1).await, 403, "forbidden").await;
        assert_error(stack.patch_message(&dave, group, 1, &edit).await, 403, "forbidden").await;
        assert_error(stack.delete_message(&dave, group, 1).await, 403, "forbidden").await;
        assert_error(stack.patch_message(&bob, group, 9, &edit).await, 404, "not_found").await;
        assert_error(stack.delete_message(&bob, Uuid::now_v7(), 1).await, 404, "not_found").await;
        assert_error(stack.patch_message(&bob, group, 1, &json!({ "content": "  " })).await, 422, "empty_message").await;
        let long = json!({ "content": "x".repeat(4001) });
        assert_error(stack.patch_message(&bob, group, 1, &long).await, 422, "content_too_long").await;
        assert_error(stack.patch_message(&bob, group, 1, &json!({ "text": "typo" })).await, 422, "validation_failed").await;
        let bad_seq = stack.client.patch(format!("{}/chats/{group}/messages/first", stack.chat_url))
            .bearer_auth(&bob.token).json(&edit).send().await.unwrap();
        assert_error(bad_seq, 400, "bad_request").await;
        // Nothing of the refused changes was stored or counted.
        assert_eq!(stack.history(&carla, group).await[0]["content"], "hello group");
        assert_eq!(stack.last_edit_seq(&carla, group).await, 0);

        let removed = ok_json(stack.delete_message(&ana, group, 1).await).await;
        assert_eq!((removed["senderId"].as_str(), removed["content"].as_str()), (Some(bob.id.to_string().as_str()), Some("")));
        // Deleting again changes nothing; a deleted message cannot be edited.
        assert_eq!(ok_json(stack.delete_message(&bob, group, 1).await).await, removed);
        assert_error(stack.patch_message(&bob, group, 1, &edit).await, 409, "message_deleted").await;
        assert_eq!(stack.last_edit_seq(&carla, group).await, 1);

        // The WebSocket refuses the same way, echoing req, and the connection keeps serving.
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send(json!({ "type": "edit_message", "req": "x1", "chatId": group, "seq": 2, "content": "mine now" })).await;
        let refused = ana_ws.answer_to("x1").await;
        assert_eq!((&refused["type"], &refused["code"]), (&json!("error"), &json!("forbidden")), "{refused}");
        ana_ws.send(json!({ "type": "edit_message", "req": "x2", "chatId": group, "seq": 1, "content": "back" })).await;
        assert_eq!(ana_ws.answer_to("x2").await["code"], "forbidden");
        bob_ws.send(json!({ "type": "edit_message", "req": "x3", "chatId": group, "seq": 1, "content": "back" })).await;
        assert_eq!(bob_ws.answer_to("x3").await["code"], "message_deleted");
        bob_ws.send(json!({ "type": "delete_message", "req": "x4", "chatId": group, "seq": "2" })).await;
        assert_eq!(bob_ws.answer_to("x4").await["code"], "invalid_frame");
        bob_ws.send(json!({ "type": "delete_message", "req": "x5", "chatId": group, "seq": 2 })).await;
        let ack = bob_ws.answer_to("x5").await;
        assert_eq!((ack["type"].as_str(), ack["message"]["editSeq"].as_i64()), (Some("ack"), Some(2)), "{ack}");
    }

    async fn an_edit_of_content_changed_since_its_editor_saw_it_is_refused_whichever_door_it_comes_through(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "see you at 3").await;
        assert_eq!(bob_ws.collect_seqs(chat, 1).await, [1]);

        // Ana's phone changes the message while her laptop still shows "see you at 3".
        let phone = json!({ "content": "see you at 4", "replaces": "see you at 3" });
        let changed = ok_json(stack.patch_message(&ana, chat, 1, &phone).await).await;
        assert_eq!((changed["content"].as_str(), changed["editSeq"].as_i64()), (Some("see you at 4"), Some(1)));
        assert_eq!(bob_ws.next_of("message_updated").await["message"], changed);

        // The laptop's edits, made on what it saw, would undo the phone's: each door refuses them.
        let stale = json!({ "content": "see you at 5", "replaces": "see you at 3" });
        assert_error(stack.patch_message(&ana, chat, 1, &stale).await, 409, "edit_conflict").await;
        ana_ws.send(json!({ "type": "edit_message", "req": "e1", "chatId": chat, "seq": 1, "content": "see you at 5", "replaces": "see you at 3" })).await;
        let refused = ana_ws.answer_to("e1").await;
        assert_eq!((&refused["type"], &refused["code"]), (&json!("error"), &json!("edit_conflict")), "{refused}");
        let mutation = "mutation($chat: UUID!, $replaces: String) { editMessage(chatId: $chat, seq: 1, content: \"see you at 5\", replaces: $replaces) { content } }";
        let answer = stack.graphql(Some(&ana), mutation, json!({ "chat": chat, "replaces": "see you at 3" })).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "edit_conflict", "{answer}");
        // Nothing of them was stored or counted.
        assert_eq!(stack.history(&bob, chat).await, std::slice::from_ref(&changed));
        assert_eq!(stack.last_edit_seq(&bob, chat).await, 1);

        // The phone's edit sent again (its answer lost, say) meets its own content: answered as the
        // first time, whatever it says it replaces, and nothing announced.
        assert_eq!(ok_json(stack.patch_message(&ana, chat, 1, &phone).await).await, changed);
        // A reaction is not an edit of the content: an edit made on the content it left applies.
        // (Over REST: Bob's connection is left to hear the events alone, in their order.)
        let reacted = ok_json(stack.reaction(&bob, chat, 1, "👍", true).await).await;
        assert_eq!(reacted["editSeq"], 2);
        ana_ws.send(json!({ "type": "edit_message", "req": "e2", "chatId": chat, "seq": 1, "content": "see you at 5", "replaces": "see you at 4" })).await;
        let ack = ana_ws.answer_to("e2").await;
        assert_eq!((ack["type"].as_str(), ack["message"]["content"].as_str(), ack["message"]["editSeq"].as_i64()), (Some("ack"), Some("see you at 5"), Some(3)), "{ack}");
        // Bob heard the reaction and then this edit: nothing of the refused or repeated ones.
        assert_eq!(bob_ws.next_of("message_updated").await["message"]["editSeq"], 2);
        assert_eq!(bob_ws.next_of("message_updated").await["message"], ack["message"]);
        // Without `replaces` an edit applies whatever the message reads, as before.
        let plain = ok_json(stack.patch_message(&ana, chat, 1, &json!({ "content": "see you at 6" })).await).await;
        assert_eq!(plain["editSeq"], 4);
        // And `replaces` must be text.
        let wrong = json!({ "content": "x", "replaces": 3 });
        assert_error(stack.patch_message(&ana, chat, 1, &wrong).await, 422, "validation_failed").await;
    }

    async fn a_deleted_image_message_no_longer_shows_its_image_to_the_chat(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let upload = stack.client.post(format!("{}/attachments", stack.chat_url)).bearer_auth(&ana.token)
            .header("content-type", "image/png").body(tiny_png()).send().await.unwrap();
        assert_eq!(upload.status(), StatusCode::CREATED);
        let upload: Value = upload.json().await.unwrap();
        let send = json!({ "clientMsgId": "i1", "content": "look", "attachmentId": upload["id"] });
        assert_eq!(stack.post(&ana, &format!("/chats/{chat}/messages"), &send).await.status(), StatusCode::CREATED);
        let url = upload["url"].as_str().unwrap();
        assert_eq!(stack.get(&bob, url).await.status(), StatusCode::OK);

        // An image's caption may be emptied: the image is the message.
        let edited = ok_json(stack.patch_message(&ana, chat, 1, &json!({ "content": "" })).await).await;
        assert_eq!((edited["content"].as_str(), &edited["image"]["id"]), (Some(""), &upload["id"]));
        let deleted = ok_json(stack.delete_message(&ana, chat, 1).await).await;
        assert!(deleted.get("image").is_none(), "{deleted}");
        assert_error(stack.get(&bob, url).await, 404, "not_found").await;
        assert_eq!(stack.get(&ana, url).await.status(), StatusCode::OK, "its uploader still has it");
        // Carried by no message any more, it is swept as an upload never sent is.
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        assert_eq!(chat_service::service::attachments::sweep_unsent(&stack.chat, later).await.unwrap(), 1);
        assert_error(stack.get(&ana, url).await, 404, "not_found").await;
    }

    async fn changes_made_while_away_are_resumed_after_the_missed_messages(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "one").await;
        ana_ws.send_message(chat, "m2", "two").await;
        // Bob has seq 2 and every change (none yet) when he goes away.
        let edit = |seq: i64, content: &str| json!({ "content": content, "seq": seq });
        let patch = |body: Value| {
            let (stack, ana) = (&stack, &ana);
            async move { ok_json(stack.patch_message(ana, chat, body["seq"].as_i64().unwrap(), &json!({ "content": body["content"] })).await).await }
        };
        patch(edit(1, "one, edited")).await;
        ana_ws.send_message(chat, "m3", "three").await;
        let three = patch(edit(3, "three, edited")).await;
        let two = ok_json(stack.delete_message(&ana, chat, 2).await).await;
        let one = patch(edit(1, "one, edited twice")).await;
        assert_eq!([one["editSeq"].as_i64(), two["editSeq"].as_i64(), three["editSeq"].as_i64()], [Some(4), Some(3), Some(2)]);
        // The hub hands events out on its own task: once Ana's connection has the last change, no
        // announcement of these changes is still on its way to reach Bob's new connection as well.
        while ana_ws.next_of("message_updated").await["message"]["editSeq"] != 4 {}

        let mut bob_ws = stack.connect_raw().await;
        bob_ws.send(json!({ "type": "auth", "token": bob.token, "resume": { chat.to_string(): 2 }, "editsAfter": { chat.to_string(): 0 } })).await;
        assert_eq!(bob_ws.next().await["chats"][0]["lastEditSeq"], 4);
        // The missed message as it is now, then the changes of what Bob had, in change order: one
        // update per message (the first edit of seq 1 is folded into its latest).
        let missed = bob_ws.next().await;
        assert_eq!((missed["type"].as_str(), &missed["message"]), (Some("new_message"), &three));
        let updated = bob_ws.next().await;
        assert_eq!((updated["type"].as_str(), &updated["message"]), (Some("message_updated"), &two));
        let updated = bob_ws.next().await;
        assert_eq!((updated["type"].as_str(), &updated["message"]), (Some("message_updated"), &one));
        let resumed = bob_ws.next().await;
        assert_eq!(resumed, json!({ "type": "resumed", "chats": { chat.to_string(): 3 }, "edits": { chat.to_string(): 4 } }));

        // A resume frame asks for changes alone; bad entries are refused one by one.
        let stranger = Uuid::now_v7();
        bob_ws.send(json!({ "type": "resume", "req": "r1", "editsAfter": { chat.to_string(): 3, stranger.to_string(): 0 } })).await;
        let mut frames = Vec::new();
        loop {
            let frame = bob_ws.next().await;
            let done = frame["type"] == "resumed";
            frames.push(frame);
            if done {
                break;
            }
        }
        let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message_updated", "error", "resumed"], "{frames:?}");
        assert_eq!(frames[0]["message"], one);
        assert_eq!((&frames[1]["code"], &frames[1]["req"]), (&json!("forbidden"), &json!("r1")));
        assert_eq!(frames[2], json!({ "type": "resumed", "req": "r1", "chats": {}, "edits": { chat.to_string(): 4 } }));
        for bad in [5, -1] {
            bob_ws.send(json!({ "type": "resume", "req": "r2", "editsAfter": { chat.to_string(): bad } })).await;
            assert_eq!(bob_ws.next().await["code"], "invalid_seq");
            assert_eq!(bob_ws.next().await, json!({ "type": "resumed", "req": "r2", "chats": {} }));
        }
        // Resuming belongs to the first auth frame, changes as well as messages.
        bob_ws.send(json!({ "type": "auth", "req": "a1", "token": bob.token, "editsAfter": { chat.to_string(): 0 } })).await;
        assert_eq!(bob_ws.next().await["code"], "invalid_frame");
    }

    async fn a_change_that_overtakes_its_message_delivers_the_message_as_it_is_now(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_ws = stack.connect(&bob).await;
        // Stored, but its announcement is lost: Bob's connection is still at seq 0 when the edit's
        // announcement arrives.
        store_unannounced(&stack, chat, ana.id, "lost", "before").await;
        let edited = ok_json(stack.patch_message(&ana, chat, 1, &json!({ "content": "after" })).await).await;
        let first = bob_ws.next().await;
        assert_eq!((first["type"].as_str(), &first["message"]), (Some("new_message"), &edited), "{first}");
        // The update itself is not sent after it: the next frame is the next message.
        send_next_over_rest(&stack, &ana, chat).await;
        let next = bob_ws.next().await;
        assert_eq!((next["type"].as_str(), next["message"]["seq"].as_i64()), (Some("new_message"), Some(2)), "{next}");
    }

    async fn graphql_edits_deletes_and_announces_changes(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "draft").await;
        let mut subscriber = stack.graphql_ws(&bob).await;
        subscriber.subscribe("u", "subscription($chat: UUID!) { messageUpdated(chatId: $chat) { seq content editSeq editedAt deletedAt } }", json!({ "chat": chat })).await;
        stack.wait_for_followers(chat, 2).await;

        let edit = "mutation($chat: UUID!) { editMessage(chatId: $chat, seq: 1, content: \"final\") { content editSeq editedAt } }";
        let edited = stack.graphql(Some(&ana), edit, json!({ "chat": chat })).await;
        assert_eq!(edited["data"]["editMessage"]["content"], "final", "{edited}");
        let heard = subscriber.next_payload("u").await;
        assert_eq!((heard["data"]["messageUpdated"]["content"].as_str(), heard["data"]["messageUpdated"]["editSeq"].as_i64()), (Some("final"), Some(1)), "{heard}");

        let refused = stack.graphql(Some(&bob), edit, json!({ "chat": chat })).await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "forbidden", "{refused}");
        let delete = "mutation($chat: UUID!) { deleteMessage(chatId: $chat, seq: 1) { content deletedAt editSeq } }";
        let deleted = stack.graphql(Some(&ana), delete, json!({ "chat": chat })).await;
        assert_eq!(deleted["data"]["deleteMessage"]["editSeq"], 2, "{deleted}");
        let heard = subscriber.next_payload("u").await;
        assert!(heard["data"]["messageUpdated"]["deletedAt"].is_string(), "{heard}");
        let query = "query($chat: UUID!) { chat(id: $chat) { lastEditSeq } }";
        assert_eq!(stack.graphql(Some(&bob), query, json!({ "chat": chat })).await["data"]["chat"]["lastEditSeq"], 2);
    }

    async fn reactions_are_one_per_user_and_emoji_and_every_follower_hears_of_them(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let carla = stack.user("carla").await;
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "lunch?").await;
        let mut bob_ws = stack.connect(&bob).await;

        bob_ws.send(json!({ "type": "add_reaction", "req": "r1", "chatId": chat, "seq": 1, "emoji": "👍" })).await;
        let ack = bob_ws.answer_to("r1").await;
        assert_eq!(reactions_of(&ack["message"]), reacted(&[("👍", &[&bob])]), "{ack}");
        assert_eq!((ack["message"]["editSeq"].as_i64(), ack["message"].get("editedAt")), (Some(1), None), "a reaction is no edit");
        assert_eq!(ana_ws.next_of("message_updated").await["message"], ack["message"]);

        let both = ok_json(stack.reaction(&ana, chat, 1, "👍", true).await).await;
        assert_eq!(reactions_of(&both), reacted(&[("👍", &[&bob, &ana])]));
        // Again: no change, no count, no event. An unqualified heart is the heart.
        assert_eq!(ok_json(stack.reaction(&bob, chat, 1, "👍", true).await).await, both);
        let heart = ok_json(stack.reaction(&bob, chat, 1, "\u{2764}", true).await).await;
        assert_eq!(reactions_of(&heart), reacted(&[("👍", &[&bob, &ana]), ("\u{2764}\u{fe0f}", &[&bob])]));
        assert_eq!(heart["editSeq"], 3);
        assert_eq!(ana_ws.next_of("message_updated").await["message"], both);
        assert_eq!(ana_ws.next_of("message_updated").await["message"], heart);

        // Taken back; one never given changes nothing.
        bob_ws.send(json!({ "type": "remove_reaction", "req": "r2", "chatId": chat, "seq": 1, "emoji": "👍" })).await;
        assert_eq!(reactions_of(&bob_ws.answer_to("r2").await["message"]), reacted(&[("👍", &[&ana]), ("❤️", &[&bob])]));
        let fewer = ok_json(stack.reaction(&ana, chat, 1, "👍", false).await).await;
        assert_eq!(reactions_of(&fewer), reacted(&[("❤️", &[&bob])]));
        assert_eq!(ok_json(stack.reaction(&ana, chat, 1, "🎉", false).await).await, fewer);

        // Refused: not one emoji, a stranger, no such message; nothing stored.
        for bad in ["a", "👍👍", " "] {
            let body = assert_error(stack.reaction(&ana, chat, 1, bad, true).await, 422, "validation_failed").await;
            assert!(body["error"]["fields"]["emoji"].is_string(), "{bad:?}: {body}");
        }
        assert_error(stack.reaction(&carla, chat, 1, "👍", true).await, 403, "forbidden").await;
        assert_error(stack.reaction(&ana, chat, 7, "👍", true).await, 404, "not_found").await;
        bob_ws.send(json!({ "type": "add_reaction", "req": "r3", "chatId": chat, "seq": 1 })).await;
        assert_eq!(bob_ws.answer_to("r3").await["code"], "invalid_frame");
        // At most 20 different emoji on a message.
        for emoji in emojis::iter().filter(|e| e.as_str() != "❤️").take(19) {
            assert_eq!(stack.reaction(&ana, chat, 1, emoji.as_str(), true).await.status(), StatusCode::OK);
        }
        let many = stack.get(&ana, &format!("/chats/{chat}/messages")).await.json::<Value>().await.unwrap();
        assert_eq!(reactions_of(&many["messages"][0]).len(), 20);
        let body = assert_error(stack.reaction(&bob, chat, 1, "🚀", true).await, 422, "validation_failed").await;
        assert!(body["error"]["fields"]["emoji"].as_str().unwrap().contains("20"), "{body}");
        // Existing ones can still be joined; a deleted message has none and takes none.
        assert_eq!(stack.reaction(&bob, chat, 1, "❤️", false).await.status(), StatusCode::OK);
        let deleted = ok_json(stack.delete_message(&ana, chat, 1).await).await;
        assert!(deleted.get("reactions").is_none(), "{deleted}");
        assert_error(stack.reaction(&bob, chat, 1, "👍", true).await, 409, "message_deleted").await;
    }

    async fn reactions_given_at_once_are_all_kept(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let mut others = Vec::new();
        for name in ["bob", "carla", "dave", "erin", "fred", "gina"] {
            others.push(stack.user(name).await);
        }
        let group = stack.group(&ana, &others.iter().collect::<Vec<_>>()).await;
        stack.post(&ana, &format!("/chats/{group}/messages"), &json!({ "clientMsgId": "m1", "content": "vote" })).await;
        // Each reads the message, then writes it back with their reaction: only a write that reads
        // under the chat's lock keeps them all.
        let stack = &stack;
        let given = others.iter().flat_map(|user| {
            [("👍", user), ("🎉", user)].map(|(emoji, user)| async move { stack.reaction(user, group, 1, emoji, true).await.status() })
        });
        let statuses = futures_util::future::join_all(given).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        let page: Value = stack.get(&ana, &format!("/chats/{group}/messages")).await.json().await.unwrap();
        let kept = reactions_of(&page["messages"][0]);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.iter().all(|(_, who)| who.len() == others.len()), "{kept:?}");
        assert_eq!(page["messages"][0]["editSeq"], 2 * others.len(), "each counted once, no gap");
    }

    async fn reactions_given_while_away_are_resumed_and_read_over_graphql(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut ana_ws = stack.connect(&ana).await;
        ana_ws.send_message(chat, "m1", "shipped").await;
        let mutation = "mutation($chat: UUID!) { addReaction(chatId: $chat, seq: 1, emoji: \"🎉\") { editSeq reactions { emoji userIds } } }";
        let answer = stack.graphql(Some(&ana), mutation, json!({ "chat": chat })).await;
        let reaction = &answer["data"]["addReaction"]["reactions"][0];
        assert_eq!((reaction["emoji"].as_str(), &reaction["userIds"]), (Some("🎉"), &json!([ana.id])), "{answer}");

        // Bob was away for it: he had seq 1 and no change.
        let mut bob_ws = stack.connect_raw().await;
        bob_ws.send(json!({ "type": "auth", "token": bob.token, "resume": { chat.to_string(): 1 }, "editsAfter": { chat.to_string(): 0 } })).await;
        bob_ws.next_of("ready").await;
        let updated = bob_ws.next().await;
        assert_eq!(updated["type"], "message_updated", "{updated}");
        assert_eq!(reactions_of(&updated["message"]), reacted(&[("🎉", &[&ana])]));
        assert_eq!(bob_ws.next().await["edits"], json!({ chat.to_string(): 1 }));
    }
}

/// Each reaction of a message, as (emoji, who).
fn reactions_of(message: &Value) -> Vec<(String, Vec<String>)> {
    let reactions = message.get("reactions").and_then(Value::as_array).cloned().unwrap_or_default();
    reactions
        .iter()
        .map(|r| {
            let who = r["userIds"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
            (r["emoji"].as_str().unwrap().to_owned(), who)
        })
        .collect()
}

fn reacted(pairs: &[(&str, &[&User])]) -> Vec<(String, Vec<String>)> {
    pairs.iter().map(|(emoji, who)| ((*emoji).to_owned(), who.iter().map(|u| u.id.to_string()).collect())).collect()
}

/// Ana sends the chat's next message over REST.
async fn send_next_over_rest(stack: &TestStack, ana: &User, chat: Uuid) {
    let sent =
        stack.post(ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "next", "content": "next" })).await;
    assert_eq!(sent.status(), StatusCode::CREATED);
}

/// A 2 × 2 PNG.
fn tiny_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image::RgbImage::new(2, 2)).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
