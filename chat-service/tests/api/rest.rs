use serde_json::{Value, json};

use crate::helpers::{TestStack, on_both_backends};

on_both_backends! {
    async fn a_direct_chat_between_two_users_exists_once(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let first = stack.post(&ana, "/chats", &json!({ "kind": "direct", "participantIds": [bob.id] })).await;
        assert_eq!(first.status().as_u16(), 201);
        let first: Value = first.json().await.unwrap();
        let again = stack.post(&bob, "/chats", &json!({ "kind": "direct", "participantIds": [ana.id] })).await;
        assert_eq!(again.status().as_u16(), 200);
        assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
        assert_eq!(first["participants"].as_array().unwrap().len(), 2);
        assert_eq!(first["participants"][1]["displayName"], "bob Example");
    }

    async fn chat_creation_rejects_bad_input(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let missing = uuid::Uuid::now_v7();
        let res = stack.post(&ana, "/chats", &json!({ "kind": "direct", "participantIds": [missing] })).await;
        assert_eq!(res.status().as_u16(), 422);
        let res = stack.post(&ana, "/chats", &json!({ "kind": "group", "participantIds": [ana.id] })).await;
        assert_eq!(res.status().as_u16(), 422);
        let res = stack.post(&ana, "/chats", &json!({ "kind": "party", "participantIds": [] })).await;
        assert_eq!(res.status().as_u16(), 422);
        let list: Value = stack.get(&ana, "/chats").await.json().await.unwrap();
        assert_eq!(list.as_array().unwrap().len(), 0, "nothing was created");
        let res = stack.client.get(format!("{}/chats", stack.chat_url)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
    }

    async fn history_pages_by_seq_and_unread_counts_follow_reads(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        for n in 1..=7 {
            let res = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": format!("c{n}"), "content": format!("m{n}") })).await;
            assert_eq!(res.status().as_u16(), 201);
        }
        let newest: Value = stack.get(&bob, &format!("/chats/{chat}/messages?limit=3")).await.json().await.unwrap();
        let seqs: Vec<i64> = newest["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!((seqs, newest["hasMore"].as_bool()), (vec![5, 6, 7], Some(true)));
        let older: Value = stack.get(&bob, &format!("/chats/{chat}/messages?limit=3&before=5")).await.json().await.unwrap();
        let seqs: Vec<i64> = older["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        let after: Value = stack.get(&bob, &format!("/chats/{chat}/messages?after=5")).await.json().await.unwrap();
        assert_eq!(after["messages"].as_array().unwrap().len(), 2);

        let chats: Value = stack.get(&bob, "/chats").await.json().await.unwrap();
        assert_eq!((chats[0]["unreadCount"].as_i64(), chats[0]["lastMessage"]["content"].as_str()), (Some(7), Some("m7")));
        let res = stack.post(&bob, &format!("/chats/{chat}/read"), &json!({ "seq": 4 })).await;
        assert_eq!(res.status().as_u16(), 204);
        let chats: Value = stack.get(&bob, "/chats").await.json().await.unwrap();
        assert_eq!(chats[0]["unreadCount"], 3);
        let res = stack.post(&bob, &format!("/chats/{chat}/read"), &json!({ "seq": 8 })).await;
        assert_eq!(res.status().as_u16(), 422);
        let ana_view: Value = stack.get(&ana, "/chats").await.json().await.unwrap();
        assert_eq!(ana_view[0]["unreadCount"], 0, "own messages are read");
    }

    async fn group_owners_manage_members(backend) {
        let stack = TestStack::spawn(backend).await;
        let ana = stack.user("ana").await;
        let bob = stack.user("bob").await;
        let cat = stack.user("cat").await;
        let chat = stack.group(&ana, &[&bob]).await;
        let res = stack.post(&bob, &format!("/chats/{chat}/participants"), &json!({ "userIds": [cat.id] })).await;
        assert_eq!(res.status().as_u16(), 403, "members do not add people");
        let res = stack.post(&ana, &format!("/chats/{chat}/participants"), &json!({ "userIds": [cat.id] })).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["participants"].as_array().unwrap().len(), 3);
        let res = stack.client.delete(format!("{}/chats/{chat}/participants/{}", stack.chat_url, cat.id)).bearer_auth(&ana.token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204);
        assert_eq!(stack.get(&cat, &format!("/chats/{chat}")).await.status().as_u16(), 403);
        let res = stack.post(&bob, &format!("/chats/{chat}/leave"), &json!({})).await;
        assert_eq!(res.status().as_u16(), 204);
        assert_eq!(stack.get(&bob, &format!("/chats/{chat}")).await.status().as_u16(), 403);
    }
}
