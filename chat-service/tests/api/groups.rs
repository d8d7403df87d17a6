//! Running a group: its owners and admins rename it and manage its members, its owner sets roles
//! and hands it over, and every member's connections hear of each change.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::helpers::*;

impl TestStack {
    /// Each participant's role in `chat`, as `viewer` is shown them.
    async fn roles(&self, viewer: &User, chat: Uuid) -> BTreeMap<String, String> {
        let chat: Value = self.get(viewer, &format!("/chats/{chat}")).await.json().await.unwrap();
        let participants = chat["participants"].as_array().unwrap().iter();
        participants
            .map(|p| (p["userId"].as_str().unwrap().to_owned(), p["role"].as_str().unwrap().to_owned()))
            .collect()
    }
}

fn roles(pairs: &[(&User, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(user, role)| (user.id.to_string(), (*role).to_owned())).collect()
}

on_both_backends! {
    async fn chats_made_and_members_added_are_limited_per_user(backend) {
        // Two a minute: the direct chat and the group use Ana's budget up.
        let stack = TestStack::spawn_with(backend, |c| c.chat_invites_per_minute = 2).await;
        let (ana, bob, _direct) = stack.ana_and_bob().await;
        let carla = stack.user("carla").await;
        let group = stack.group(&ana, &[&bob]).await;

        let res = stack.post(&ana, &format!("/chats/{group}/participants"), &json!({ "userIds": [carla.id] })).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().contains_key("retry-after"));
        let res = stack.post(&ana, "/chats", &json!({ "kind": "direct", "participantIds": [carla.id] })).await;
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
        let create = "mutation($with: [UUID!]!) { createChat(input: { kind: GROUP, title: \"More\", participantIds: $with }) { id } }";
        let answer = stack.graphql(Some(&ana), create, json!({ "with": [carla.id] })).await;
        assert_eq!(answer["errors"][0]["extensions"]["code"], "rate_limited", "{answer}");

        // Nothing was made or changed, and others make chats as before.
        let chats: Value = stack.get(&ana, "/chats").await.json().await.unwrap();
        assert_eq!(chats.as_array().map(Vec::len), Some(2), "{chats}");
        assert_eq!(stack.roles(&ana, group).await.len(), 2, "Ana and Bob only");
        assert_eq!(stack.post(&carla, "/chats", &json!({ "kind": "direct", "participantIds": [bob.id] })).await.status(), StatusCode::CREATED);
    }

    async fn a_group_renamed_by_its_owner_or_an_admin_is_shown_renamed_to_every_member(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;

        let renamed = stack.rename(&ana, group, "  Launch (Friday)  ").await;
        assert_eq!(renamed.status(), StatusCode::OK);
        let renamed: Value = renamed.json().await.unwrap();
        assert_eq!(renamed["title"], "Launch (Friday)", "trimmed");
        let told = json!({ "type": "conversation_updated", "chatId": group, "title": "Launch (Friday)" });
        assert_eq!(bob_ws.next_of("conversation_updated").await, told);
        assert_eq!(ana_ws.next_of("conversation_updated").await, told, "the renamer's own connections too");

        // Refused, and nothing changes: a member, a stranger, a direct chat, a blank or long title.
        assert_error(stack.rename(&carla, group, "Mine").await, 403, "forbidden").await;
        assert_error(stack.rename(&dave, group, "Mine").await, 403, "forbidden").await;
        assert_error(stack.rename(&ana, direct, "Us").await, 409, "conflict").await;
        assert_error(stack.rename(&ana, Uuid::now_v7(), "Gone").await, 404, "not_found").await;
        let body = assert_error(stack.rename(&ana, group, "   ").await, 422, "validation_failed").await;
        assert!(body["error"]["fields"]["title"].is_string(), "{body}");
        assert_error(stack.rename(&ana, group, &"x".repeat(129)).await, 422, "validation_failed").await;
        let seen: Value = stack.get(&carla, &format!("/chats/{group}")).await.json().await.unwrap();
        assert_eq!(seen["title"], "Launch (Friday)");

        // The same title again announces nothing: the next event Bob hears is the next rename, by
        // Bob himself once he is an admin.
        assert_eq!(stack.rename(&ana, group, "Launch (Friday)").await.status(), StatusCode::OK);
        assert_eq!(stack.set_role(&ana, group, bob.id, "admin").await.status(), StatusCode::OK);
        assert_eq!(stack.rename(&bob, group, "Launch").await.status(), StatusCode::OK);
        assert_eq!(bob_ws.next_of("conversation_updated").await["title"], "Launch");
        // Over GraphQL too.
        let mutation = "mutation($chat: UUID!) { renameChat(chatId: $chat, title: \"Ship it\") { title } }";
        let answer = stack.graphql(Some(&bob), mutation, json!({ "chat": group })).await;
        assert_eq!(answer["data"]["renameChat"]["title"], "Ship it", "{answer}");
        let refused = stack.graphql(Some(&carla), mutation, json!({ "chat": group })).await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "forbidden", "{refused}");
    }

    async fn the_owner_sets_roles_and_hands_the_group_over_and_every_member_is_told(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, direct) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let mut carla_ws = stack.connect(&carla).await;
        let mut bob_ws = stack.connect(&bob).await;

        assert_eq!(stack.set_role(&ana, group, bob.id, "admin").await.status(), StatusCode::OK);
        let told = json!({ "type": "participant_role_changed", "chatId": group, "userId": bob.id, "role": "admin" });
        assert_eq!(carla_ws.next_of("participant_role_changed").await, told);
        assert_eq!(bob_ws.next_of("participant_role_changed").await, told, "the member concerned too");
        // An admin manages members, but not roles.
        let added = stack.post(&bob, &format!("/chats/{group}/participants"), &json!({ "userIds": [dave.id] })).await;
        assert_eq!(added.status(), StatusCode::OK);
        assert_error(stack.set_role(&bob, group, carla.id, "admin").await, 403, "forbidden").await;
        assert_error(stack.set_role(&carla, group, carla.id, "owner").await, 403, "forbidden").await;
        // Refused: one's own role, a non-member, an unknown role, a direct chat.
        let own = assert_error(stack.set_role(&ana, group, ana.id, "member").await, 422, "validation_failed").await;
        assert!(own["error"]["fields"]["userId"].is_string(), "{own}");
        let stranger = stack.user("erin").await;
        assert_error(stack.set_role(&ana, group, stranger.id, "admin").await, 404, "not_found").await;
        assert_error(stack.set_role(&ana, group, bob.id, "king").await, 422, "validation_failed").await;
        assert_error(stack.set_role(&ana, direct, bob.id, "admin").await, 409, "conflict").await;
        assert_eq!(
            stack.roles(&carla, group).await,
            roles(&[(&ana, "owner"), (&bob, "admin"), (&carla, "member"), (&dave, "member")])
        );

        // Handing over: Carla owns the group, Ana is an admin; both changes are announced.
        assert_eq!(stack.set_role(&ana, group, carla.id, "owner").await.status(), StatusCode::OK);
        let first = carla_ws.next_of("participant_role_changed").await;
        let second = carla_ws.next_of("participant_role_changed").await;
        assert_eq!((&first["userId"], &first["role"]), (&json!(carla.id), &json!("owner")));
        assert_eq!((&second["userId"], &second["role"]), (&json!(ana.id), &json!("admin")));
        assert_eq!(
            stack.roles(&bob, group).await,
            roles(&[(&ana, "admin"), (&bob, "admin"), (&carla, "owner"), (&dave, "member")])
        );
        assert_error(stack.set_role(&ana, group, bob.id, "member").await, 403, "forbidden").await;
        // The new owner demotes, over GraphQL.
        let mutation = "mutation($chat: UUID!, $user: UUID!) { setParticipantRole(chatId: $chat, userId: $user, role: MEMBER) { participants { userId role } } }";
        let answer = stack.graphql(Some(&carla), mutation, json!({ "chat": group, "user": bob.id })).await;
        assert!(answer["errors"].is_null(), "{answer}");
        // Bob hears of the hand-over first, then of his own change.
        let mut heard = Vec::new();
        for _ in 0..3 {
            let frame = bob_ws.next_of("participant_role_changed").await;
            heard.push((frame["userId"].clone(), frame["role"].clone()));
        }
        assert_eq!(heard, [(json!(carla.id), json!("owner")), (json!(ana.id), json!("admin")), (json!(bob.id), json!("member"))]);
    }

    async fn two_hand_overs_at_once_leave_one_owner(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, _) = stack.trio_in_a_group_and_a_direct_chat().await;
        let (to_bob, to_carla) =
            tokio::join!(stack.set_role(&ana, group, bob.id, "owner"), stack.set_role(&ana, group, carla.id, "owner"));
        let mut statuses = [to_bob.status().as_u16(), to_carla.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 403], "one hand-over goes through, the other finds Ana no longer owner");
        let roles = stack.roles(&ana, group).await;
        assert_eq!(roles.values().filter(|role| *role == "owner").count(), 1, "{roles:?}");
        assert_eq!(roles[&ana.id.to_string()], "admin");
    }

    async fn when_the_owner_leaves_an_admin_or_else_the_longest_standing_member_owns_the_group(backend) {
        let stack = TestStack::spawn(backend).await;
        let ([ana, bob, carla], group, _) = stack.trio_in_a_group_and_a_direct_chat().await;
        let dave = stack.user("dave").await;
        let added = stack.post(&ana, &format!("/chats/{group}/participants"), &json!({ "userIds": [dave.id] })).await;
        assert_eq!(added.status(), StatusCode::OK);
        assert_eq!(stack.set_role(&ana, group, dave.id, "admin").await.status(), StatusCode::OK);
        let mut bob_ws = stack.connect(&bob).await;

        // Dave joined last, but he is the admin: he takes over.
        assert_eq!(stack.post(&ana, &format!("/chats/{group}/leave"), &json!({})).await.status(), StatusCode::NO_CONTENT);
        let heir = bob_ws.next_of("participant_role_changed").await;
        assert_eq!(heir, json!({ "type": "participant_role_changed", "chatId": group, "userId": dave.id, "role": "owner" }));
        // Without an admin, the member who joined first (Bob and Carla were added together, in id order).
        assert_eq!(stack.post(&dave, &format!("/chats/{group}/leave"), &json!({})).await.status(), StatusCode::NO_CONTENT);
        let heir = bob_ws.next_of("participant_role_changed").await;
        let first = std::cmp::min(bob.id, carla.id);
        assert_eq!((&heir["userId"], &heir["role"]), (&json!(first), &json!("owner")));
        let expected = if first == bob.id { [(&bob, "owner"), (&carla, "member")] } else { [(&bob, "member"), (&carla, "owner")] };
        assert_eq!(stack.roles(&bob, group).await, roles(&expected));
    }
}
