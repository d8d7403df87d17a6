//! A session ended at user-service ends at once everywhere: its WebSocket connections are told and
//! closed with 4001, its GraphQL subscriptions end, and its access token is refused by both
//! services from then on — not when the token expires. Other sessions of the same user go on.

use serde_json::{Value, json};

use crate::helpers::{TestStack, User, WsClient, on_both_backends};

/// One device of a user: a session of its own (a login), its access and refresh tokens.
struct Device {
    user: User,
    refresh: String,
}

async fn log_in(stack: &TestStack, username: &str) -> Device {
    let body = stack.log_in(username).await;
    Device {
        user: User {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: body["accessToken"].as_str().unwrap().to_owned(),
        },
        refresh: body["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// POSTs to user-service with `device`'s access token; answers the status.
async fn users_post(stack: &TestStack, device: &Device, path: &str, body: Value) -> u16 {
    let url = format!("{}{path}", stack.users_url);
    stack.client.post(url).bearer_auth(&device.user.token).json(&body).send().await.unwrap().status().as_u16()
}

/// The connection is told that its session ended, then closed with 4001.
async fn told_and_closed(ws: &mut WsClient) {
    let error = ws.next_of("error").await;
    assert_eq!(error["code"], "invalid_token", "{error}");
    assert!(error["message"].as_str().unwrap().contains("session"), "{error}");
    assert_eq!(ws.closed_with().await, 4001);
}

/// `device`'s token at chat-service's REST door and user-service's: the statuses.
async fn token_status(stack: &TestStack, device: &Device) -> (u16, u16) {
    let chats = stack.get(&device.user, "/chats").await.status().as_u16();
    let me = stack.client.get(format!("{}/users/me", stack.users_url)).bearer_auth(&device.user.token).send().await;
    (chats, me.unwrap().status().as_u16())
}

/// The connection still answers.
async fn still_open(ws: &mut WsClient) {
    ws.send(json!({ "type": "ping", "req": "alive" })).await;
    assert_eq!(ws.next_of("pong").await["req"], "alive");
}

on_both_backends! {
    async fn a_session_signed_out_is_refused_at_once_and_its_connections_close(backend) {
        let stack = TestStack::spawn(backend).await;
        stack.user("ana").await;
        let (phone, laptop) = (log_in(&stack, "ana").await, log_in(&stack, "ana").await);
        let mut phone_ws = stack.connect(&phone.user).await;
        let mut laptop_ws = stack.connect(&laptop.user).await;
        let mut phone_gql = stack.graphql_ws(&phone.user).await;
        phone_gql.subscribe("chats", "subscription { myChats { __typename } }", json!({})).await;
        stack.wait_for_connections(&phone.user, 3).await;
        assert_eq!(token_status(&stack, &phone).await, (200, 200));

        // The phone's session ends: a logout with its refresh token.
        let body = json!({ "refreshToken": phone.refresh });
        assert_eq!(users_post(&stack, &phone, "/auth/logout", body).await, 204);

        told_and_closed(&mut phone_ws).await;
        let ended = phone_gql.next_payload("chats").await;
        assert_eq!(ended["errors"][0]["extensions"]["code"], "invalid_token", "{ended}");
        assert_eq!(token_status(&stack, &phone).await, (401, 401), "its token is refused by both services");
        let mut again = stack.connect_raw().await;
        again.send(json!({ "type": "auth", "token": phone.user.token })).await;
        told_and_closed(&mut again).await;

        // The laptop's session goes on.
        still_open(&mut laptop_ws).await;
        assert_eq!(token_status(&stack, &laptop).await, (200, 200));

        // Signing out everywhere, from the laptop, ends it too.
        assert_eq!(users_post(&stack, &laptop, "/auth/logout-all", json!({})).await, 204);
        told_and_closed(&mut laptop_ws).await;
        assert_eq!(token_status(&stack, &laptop).await, (401, 401));
    }

    async fn a_password_change_ends_the_other_sessions_at_once_and_keeps_its_own(backend) {
        let stack = TestStack::spawn(backend).await;
        stack.user("bob").await;
        let (phone, laptop) = (log_in(&stack, "bob").await, log_in(&stack, "bob").await);
        let mut phone_ws = stack.connect(&phone.user).await;
        let mut laptop_ws = stack.connect(&laptop.user).await;

        let body = json!({ "currentPassword": "correct horse battery", "newPassword": "purple monkey dishwasher" });
        assert_eq!(users_post(&stack, &laptop, "/users/me/password", body).await, 204);

        told_and_closed(&mut phone_ws).await;
        assert_eq!(token_status(&stack, &phone).await, (401, 401));
        still_open(&mut laptop_ws).await;
        assert_eq!(token_status(&stack, &laptop).await, (200, 200), "the changer's session stays");
    }
}
