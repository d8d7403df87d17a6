//! GraphQL subscriptions to what is not a message: a chat's other events (`chatEvents`) and the
//! chats the user is added to and removed from (`myChats`), each caused through REST or the
//! WebSocket as a client would.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

const CHAT_EVENTS: &str = "subscription($chat: UUID!) { chatEvents(chatId: $chat) {
    __typename
    ... on ChatRenamed { chatId title }
    ... on ParticipantJoined { chatId userId }
    ... on ParticipantLeft { chatId userId }
    ... on ParticipantRoleChanged { chatId userId role }
    ... on ParticipantUpdated { chatId userId displayName avatarUrl }
    ... on PresenceChanged { chatId userId online } } }";

const MY_CHATS: &str = "subscription { myChats {
    __typename
    ... on ChatAdded { chat { id kind title unreadCount participants { userId role } } }
    ... on ChatRemoved { chatId } } }";

impl WsClient {
    /// The next event of subscription `id`: the one field of its `data`.
    async fn next_event(&mut self, id: &str) -> Value {
        let payload = self.next_payload(id).await;
        let fields = payload["data"].as_object().unwrap_or_else(|| panic!("an event, not {payload}"));
        fields.values().next().cloned().unwrap_or_else(|| panic!("an event, not {payload}"))
    }
}

/// A `ChatAdded`'s chat with its participants as (userId, role), in id order.
fn added(event: &Value) -> (Value, Vec<(String, String)>) {
    assert_eq!(event["__typename"], "ChatAdded", "{event}");
    let mut chat = event["chat"].clone();
    let participants = chat.as_object_mut().unwrap().remove("participants").unwrap();
    let mut members: Vec<(String, String)> = participants
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["userId"].as_str().unwrap().to_owned(), p["role"].as_str().unwrap().to_owned()))
        .collect();
    members.sort();
    (chat, members)
}

fn members(pairs: &[(&User, &str)]) -> Vec<(String, String)> {
    let mut members: Vec<(String, String)> =
        pairs.iter().map(|(user, role)| (user.id.to_string(), (*role).to_owned())).collect();
    members.sort();
    members
}

on_both_backends! {
    async fn a_rename_and_role_changes_reach_chat_events(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, _) = stack.trio_in_a_group_and_a_direct_chat().await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": group })).await;
        stack.wait_for_followers(group, 1).await;

        assert_eq!(stack.rename(&ana, group, "Launch").await.status(), StatusCode::OK);
        let renamed = json!({ "__typename": "ChatRenamed", "chatId": group, "title": "Launch" });
        assert_eq!(bob_gql.next_event("events").await, renamed);

        let role = |user: &User, role: &str| {
            json!({ "__typename": "ParticipantRoleChanged", "chatId": group, "userId": user.id, "role": role })
        };
        assert_eq!(stack.set_role(&ana, group, bob.id, "admin").await.status(), StatusCode::OK);
        assert_eq!(bob_gql.next_event("events").await, role(&bob, "ADMIN"));
        // Handing the group over changes two roles.
        assert_eq!(stack.set_role(&ana, group, carla.id, "owner").await.status(), StatusCode::OK);
        assert_eq!(bob_gql.next_event("events").await, role(&carla, "OWNER"));
        assert_eq!(bob_gql.next_event("events").await, role(&ana, "ADMIN"));
    }

    async fn members_added_removed_and_leaving_reach_chat_events(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, _) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": group })).await;
        stack.wait_for_followers(group, 1).await;

        let added = stack.post(&ana, &format!("/chats/{group}/participants"), &json!({ "userIds": [dave.id] })).await;
        assert_eq!(added.status(), StatusCode::OK);
        let joined = json!({ "__typename": "ParticipantJoined", "chatId": group, "userId": dave.id });
        assert_eq!(bob_gql.next_event("events").await, joined);

        let left = |user: &User| json!({ "__typename": "ParticipantLeft", "chatId": group, "userId": user.id });
        let removed = stack.delete(&ana, &format!("/chats/{group}/participants/{}", carla.id)).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert_eq!(bob_gql.next_event("events").await, left(&carla));
        assert_eq!(stack.post(&dave, &format!("/chats/{group}/leave"), &json!({})).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(bob_gql.next_event("events").await, left(&dave));
    }

    async fn a_members_presence_and_new_profile_reach_chat_events(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": chat })).await;
        stack.wait_for_followers(chat, 1).await;
        let presence = |online: bool| json!({ "__typename": "PresenceChanged", "chatId": chat, "userId": ana.id, "online": online });

        let mut ana_ws = stack.connect(&ana).await;
        assert_eq!(bob_gql.next_event("events").await, presence(true));

        // Ana changes her name and picture, and her connection takes the token that carries them.
        let picture = "https://example.com/ana.png";
        let token = stack.change_profile(&ana, "ana", json!({ "displayName": "Ana Renamed", "avatarUrl": picture })).await;
        ana_ws.send(json!({ "type": "auth", "req": "renew", "token": token })).await;
        ana_ws.next_of("authenticated").await;
        let updated = json!({ "__typename": "ParticipantUpdated", "chatId": chat, "userId": ana.id, "displayName": "Ana Renamed", "avatarUrl": picture });
        assert_eq!(bob_gql.next_event("events").await, updated);

        drop(ana_ws);
        assert_eq!(bob_gql.next_event("events").await, presence(false));
    }

    async fn a_subscription_opened_with_a_token_from_after_a_profile_change_shows_the_new_name(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": chat })).await;
        stack.wait_for_followers(chat, 1).await;
        let ana_as_bob_sees_her = || async {
            let view: Value = stack.get(&bob, &format!("/chats/{chat}")).await.json().await.unwrap();
            let participants = view["participants"].as_array().unwrap().clone();
            participants.into_iter().find(|p| p["userId"] == ana.id.to_string()).unwrap()["displayName"].clone()
        };

        // Ana uses GraphQL alone: her next subscription connection carries the new name.
        let picture = "https://example.com/ana.png";
        let token = stack.change_profile(&ana, "ana", json!({ "displayName": "Ana Renamed", "avatarUrl": picture })).await;
        let mut ana_gql = stack.graphql_ws_raw(json!({ "token": token })).await;
        assert_eq!(ana_gql.next().await["type"], "connection_ack");
        let updated = json!({ "__typename": "ParticipantUpdated", "chatId": chat, "userId": ana.id, "displayName": "Ana Renamed", "avatarUrl": picture });
        assert_eq!(bob_gql.next_event("events").await, updated);
        assert_eq!(ana_as_bob_sees_her().await, "Ana Renamed");

        // A connection on her token from before the change brings the old name back to no one.
        let mut stale = stack.graphql_ws(&ana).await;
        stale.subscribe("events", CHAT_EVENTS, json!({ "chat": chat })).await;
        stack.wait_for_followers(chat, 2).await;
        assert_eq!(ana_as_bob_sees_her().await, "Ana Renamed");
    }

    async fn chat_events_refuse_a_stranger_and_an_unknown_chat(backend) {
        let stack = TestStack::spawn(backend).await;
        let (_ana, _bob, chat) = stack.ana_and_bob().await;
        let eve = stack.user("eve").await;
        let mut eve_gql = stack.graphql_ws(&eve).await;

        eve_gql.subscribe("spy", CHAT_EVENTS, json!({ "chat": chat })).await;
        let refused = eve_gql.next_payload("spy").await;
        assert_eq!(error_code(&refused), "forbidden", "{refused}");
        eve_gql.subscribe("nowhere", CHAT_EVENTS, json!({ "chat": Uuid::now_v7() })).await;
        let unknown = eve_gql.next_payload("nowhere").await;
        assert_eq!(error_code(&unknown), "not_found", "{unknown}");
    }

    async fn a_removed_subscriber_hears_it_left_then_its_chat_events_end(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, _) = stack.trio_in_a_group_and_a_direct_chat().await;
        let mut bob_gql = stack.graphql_ws(&bob).await;
        let mut carla_gql = stack.graphql_ws(&carla).await;
        bob_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": group })).await;
        carla_gql.subscribe("events", CHAT_EVENTS, json!({ "chat": group })).await;
        stack.wait_for_followers(group, 2).await;

        let removed = stack.delete(&ana, &format!("/chats/{group}/participants/{}", bob.id)).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        let left = json!({ "__typename": "ParticipantLeft", "chatId": group, "userId": bob.id });
        assert_eq!(carla_gql.next_event("events").await, left, "the others hear of it");
        assert_eq!(bob_gql.next_event("events").await, left, "so does Bob, before his stream ends");
        let ended = bob_gql.next_payload("events").await;
        assert_eq!(error_code(&ended), "forbidden", "{ended}");
        assert_eq!(bob_gql.next().await, json!({ "id": "events", "type": "complete" }));
    }

    async fn my_chats_hears_of_the_chats_the_user_is_added_to_and_removed_from(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, carla) = (stack.user("ana").await, stack.user("bob").await, stack.user("carla").await);
        let mut bob_gql = stack.graphql_ws(&bob).await;
        bob_gql.subscribe("chats", MY_CHATS, json!({})).await;
        stack.wait_for_connections(&bob, 1).await;

        let group = stack.group(&ana, &[&bob]).await;
        let (chat, participants) = added(&bob_gql.next_event("chats").await);
        assert_eq!(chat, json!({ "id": group, "kind": "GROUP", "title": "Team", "unreadCount": 0 }));
        assert_eq!(participants, members(&[(&ana, "OWNER"), (&bob, "MEMBER")]));

        let direct = stack.direct(&carla, &bob).await;
        let (chat, participants) = added(&bob_gql.next_event("chats").await);
        assert_eq!(chat, json!({ "id": direct, "kind": "DIRECT", "title": null, "unreadCount": 0 }));
        assert_eq!(participants, members(&[(&bob, "MEMBER"), (&carla, "MEMBER")]));

        // A group Bob is not in tells him nothing, until he is added to it: then he sees it as he
        // would read it, its message unread.
        let other = stack.group(&carla, &[&ana]).await;
        let sent = stack.post(&carla, &format!("/chats/{other}/messages"), &json!({ "clientMsgId": "c1", "content": "hi" })).await;
        assert_eq!(sent.status(), StatusCode::CREATED);
        let added_bob = stack.post(&carla, &format!("/chats/{other}/participants"), &json!({ "userIds": [bob.id] })).await;
        assert_eq!(added_bob.status(), StatusCode::OK);
        let (chat, participants) = added(&bob_gql.next_event("chats").await);
        assert_eq!(chat, json!({ "id": other, "kind": "GROUP", "title": "Team", "unreadCount": 1 }));
        assert_eq!(participants, members(&[(&ana, "MEMBER"), (&bob, "MEMBER"), (&carla, "OWNER")]));

        let removed = stack.delete(&ana, &format!("/chats/{group}/participants/{}", bob.id)).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert_eq!(bob_gql.next_event("chats").await, json!({ "__typename": "ChatRemoved", "chatId": group }));
        assert_eq!(stack.post(&bob, &format!("/chats/{other}/leave"), &json!({})).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(bob_gql.next_event("chats").await, json!({ "__typename": "ChatRemoved", "chatId": other }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_chats_ends_with_its_token_and_leaves_the_hub() {
    let stack = TestStack::spawn(Backend::Sqlite).await;
    let (ana, bob) = (stack.user("ana").await, stack.user("bob").await);
    // Long enough for the chat to arrive first on a busy box, as in tokens.rs.
    let mut gql = stack.graphql_ws_raw(json!({ "token": stack.token_expiring(&bob, "bob Example", 10) })).await;
    assert_eq!(gql.next().await["type"], "connection_ack");
    gql.subscribe("chats", MY_CHATS, json!({})).await;
    stack.wait_for_connections(&bob, 1).await;
    let direct = stack.direct(&ana, &bob).await;
    assert_eq!(added(&gql.next_event("chats").await).0["id"], json!(direct));

    let ended = gql.next_payload("chats").await;
    assert_eq!(error_code(&ended), "token_expired", "{ended}");
    assert_eq!(gql.next().await, json!({ "id": "chats", "type": "complete" }));
    let gone = stack.chat.hub.connections_become(bob.id, |n| n == 0);
    tokio::time::timeout(EVENT_TIMEOUT, gone).await.expect("the subscription leaves the hub");
}
