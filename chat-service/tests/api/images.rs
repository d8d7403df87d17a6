//! Image messages: uploads checked and cleaned, sent by their uploader through every door, and
//! fetched by the chats that carry them.

use std::io::Cursor;

use converge_shared::entities::chat::attachment;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use super::helpers::*;

/// A `width` × `height` image in `format`.
fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let pixels = RgbImage::from_fn(width, height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    DynamicImage::ImageRgb8(pixels).write_to(&mut out, format).unwrap();
    out.into_inner()
}

impl TestStack {
    async fn upload(&self, user: Option<&User>, content_type: &str, bytes: Vec<u8>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/attachments", self.chat_url)).header(CONTENT_TYPE, content_type);
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        request.body(bytes).send().await.unwrap()
    }

    async fn uploaded(&self, user: &User, width: u32, height: u32) -> Value {
        let res = self.upload(Some(user), "image/jpeg", picture(width, height, ImageFormat::Jpeg)).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    /// The image at `path` as `user` fetches it: its content type and its size in pixels.
    async fn fetched(&self, user: &User, path: &str) -> (String, (u32, u32)) {
        let res = self.get(user, path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let content_type = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        let bytes = res.bytes().await.unwrap();
        let format = image::guess_format(&bytes).expect("an image");
        assert_eq!(format.to_mime_type(), content_type, "{path} is what its Content-Type says");
        let image = image::load_from_memory(&bytes).expect("a readable image");
        (content_type, (image.width(), image.height()))
    }

    /// Attachment rows, and files in the upload store (an image and its thumbnail each).
    async fn attachments_stored(&self) -> (u64, usize) {
        let rows = attachment::Entity::find().count(&self.chat.db).await.unwrap();
        let files = |dir: &str| std::fs::read_dir(self.chat.config.uploads_dir().join(dir)).map_or(0, |e| e.count());
        (rows, files("images") + files("thumbnails"))
    }
}

on_both_backends! {
    async fn an_image_sent_over_the_websocket_reaches_the_chat_and_only_its_participants_fetch_it(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let carla = stack.user("carla").await;
        let mut bob_ws = stack.connect(&bob).await;
        let mut ana_ws = stack.connect(&ana).await;

        let upload = stack.uploaded(&ana, 900, 600).await;
        assert_eq!((upload["width"].as_i64(), upload["height"].as_i64()), (Some(900), Some(600)));
        assert_eq!(upload["contentType"], "image/jpeg");
        let id = upload["id"].as_str().unwrap().to_owned();
        assert_eq!(upload["url"], format!("/attachments/{id}"));

        // No caption: the image is the message.
        ana_ws.send(json!({ "type": "send_message", "req": "p1", "chatId": chat, "clientMsgId": "p1", "attachmentId": id })).await;
        let ack = ana_ws.next_of("ack").await;
        let image = &ack["message"]["image"];
        assert_eq!(image["id"], id.as_str());
        assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (Some(900), Some(600)));
        assert_eq!(image["thumbnailUrl"], format!("/attachments/{id}/thumbnail"));
        assert_eq!(ack["message"]["content"], "");
        let delivered = bob_ws.next_of("new_message").await;
        assert_eq!(delivered["message"]["image"], *image);

        let url = image["url"].as_str().unwrap();
        assert_eq!(stack.fetched(&bob, url).await, ("image/jpeg".to_owned(), (900, 600)));
        assert_eq!(stack.fetched(&bob, image["thumbnailUrl"].as_str().unwrap()).await.1, (320, 213));
        assert_eq!(stack.fetched(&ana, url).await.1, (900, 600), "the uploader");
        assert_error(stack.get(&carla, url).await, 404, "not_found").await;
        assert_error(stack.client.get(format!("{}{url}", stack.chat_url)).send().await.unwrap(), 401, "unauthorized").await;
        let missing = format!("/attachments/{}", uuid::Uuid::new_v4());
        assert_error(stack.get(&bob, &missing).await, 404, "not_found").await;

        // The same bytes again are not sent again: the browser's copy is still good.
        let first = stack.get(&bob, url).await;
        let tag = first.headers()[ETAG].clone();
        let again = stack.client.get(format!("{}{url}", stack.chat_url)).bearer_auth(&bob.token)
            .header(IF_NONE_MATCH, tag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        // History, over REST and GraphQL, carries the image as sent.
        let page: Value = stack.get(&bob, &format!("/chats/{chat}/messages")).await.json().await.unwrap();
        assert_eq!(page["messages"][0]["image"], *image);
        let query = "query($chat: UUID!) { messages(chatId: $chat, last: 5) { edges { node { image { url width height } } } } }";
        let graphql = stack.graphql(Some(&bob), query, json!({ "chat": chat })).await;
        let node = &graphql["data"]["messages"]["edges"][0]["node"]["image"];
        assert_eq!((node["url"].as_str(), node["width"].as_i64()), (Some(url), Some(900)), "{graphql}");
    }

    async fn only_its_uploader_sends_an_image_and_a_retry_returns_the_original(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, bob, chat) = stack.ana_and_bob().await;
        let first = stack.uploaded(&ana, 40, 30).await;
        let second = stack.uploaded(&ana, 50, 50).await;

        let send = |id: &Value, client_msg_id: &str| json!({ "clientMsgId": client_msg_id, "content": "look", "attachmentId": id });
        let stolen = stack.post(&bob, &format!("/chats/{chat}/messages"), &send(&first["id"], "b1")).await;
        let body = assert_error(stolen, 422, "validation_failed").await;
        assert!(body["error"]["fields"]["attachmentId"].is_string(), "{body}");
        // Over the WebSocket, the same answer names the same field.
        let mut bob_ws = stack.connect(&bob).await;
        bob_ws.send(json!({ "type": "send_message", "req": "b2", "chatId": chat, "clientMsgId": "b2", "attachmentId": first["id"] })).await;
        let refused = bob_ws.next_of("error").await;
        assert_eq!((&refused["req"], &refused["code"]), (&json!("b2"), &json!("validation_failed")), "{refused}");
        assert_eq!(refused["fields"]["attachmentId"], body["error"]["fields"]["attachmentId"], "{refused}");
        let unknown = stack.post(&ana, &format!("/chats/{chat}/messages"), &send(&json!(uuid::Uuid::new_v4()), "a0")).await;
        assert_error(unknown, 422, "validation_failed").await;

        let sent = stack.post(&ana, &format!("/chats/{chat}/messages"), &send(&first["id"], "a1")).await;
        assert_eq!(sent.status(), StatusCode::CREATED);
        let sent: Value = sent.json().await.unwrap();
        assert_eq!((sent["seq"].as_i64(), sent["content"].as_str()), (Some(1), Some("look")));
        // A retry carrying another image is still the same send: the original comes back.
        let retried: Value = stack.post(&ana, &format!("/chats/{chat}/messages"), &send(&second["id"], "a1")).await.json().await.unwrap();
        assert_eq!(retried, sent);
        // Nothing of the refused sends was stored.
        let listed: Value = stack.get(&ana, &format!("/chats/{chat}")).await.json().await.unwrap();
        assert_eq!(listed["lastSeq"], 1);
    }

    async fn images_sent_at_once_keep_their_own_images_in_the_batch(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, _bob, chat) = stack.ana_and_bob().await;
        let metrics_url = format!("{}/metrics", stack.chat_url);
        let before = stack.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        let mut uploads = Vec::new();
        for n in 0..12u32 {
            uploads.push(stack.uploaded(&ana, 10 + n, 20).await);
        }
        // Every other send carries an image, each its own size: a batch mixes both kinds.
        let mut sends = Vec::new();
        for n in 0..24usize {
            let attachment = n.is_multiple_of(2).then(|| uploads[n / 2]["id"].clone());
            let body = json!({ "clientMsgId": format!("m{n}"), "content": format!("{n}"), "attachmentId": attachment });
            let request = stack.client.post(format!("{}/chats/{chat}/messages", stack.chat_url)).bearer_auth(&ana.token).json(&body);
            sends.push(tokio::spawn(async move { request.send().await.unwrap().status() }));
        }
        for send in sends {
            assert_eq!(send.await.unwrap(), StatusCode::CREATED);
        }
        let page: Value = stack.get(&ana, &format!("/chats/{chat}/messages?limit=50")).await.json().await.unwrap();
        let messages = page["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 24);
        for message in messages {
            let n: usize = message["content"].as_str().unwrap().parse().unwrap();
            if n.is_multiple_of(2) {
                let upload = &uploads[n / 2];
                assert_eq!(message["image"]["id"], upload["id"], "{message}");
                assert_eq!(message["image"]["width"], upload["width"], "{message}");
            } else {
                assert!(message.get("image").is_none(), "{message}");
            }
        }
        let after = stack.client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        let batches = metric(&after, "message_batch_size_count") - metric(&before, "message_batch_size_count");
        let batched = metric(&after, "message_batch_size_sum") - metric(&before, "message_batch_size_sum");
        assert!(batched > batches, "some transactions stored several sends ({batched} sends in {batches} batches)");
    }

    async fn an_upload_never_sent_expires_and_is_swept_while_sent_ones_stay(backend) {
        let stack = TestStack::spawn(backend).await;
        let (ana, _bob, chat) = stack.ana_and_bob().await;
        let sent = stack.uploaded(&ana, 20, 20).await;
        let unsent = stack.uploaded(&ana, 30, 30).await;
        let message = json!({ "clientMsgId": "a1", "attachmentId": sent["id"] });
        assert_eq!(stack.post(&ana, &format!("/chats/{chat}/messages"), &message).await.status(), StatusCode::CREATED);

        // Both uploads made a day ago: the unsent one can no longer be sent, the sent one still can.
        let day_ago = chrono::Utc::now() - chrono::Duration::hours(25);
        attachment::Entity::update_many()
            .col_expr(attachment::Column::CreatedAt, sea_orm::sea_query::Expr::value(day_ago))
            .exec(&stack.chat.db)
            .await
            .unwrap();
        let late = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "a2", "attachmentId": unsent["id"] })).await;
        let body = assert_error(late, 422, "validation_failed").await;
        assert!(body["error"]["fields"]["attachmentId"].as_str().unwrap().contains("expired"), "{body}");
        let again = stack.post(&ana, &format!("/chats/{chat}/messages"), &json!({ "clientMsgId": "a3", "attachmentId": sent["id"] })).await;
        assert_eq!(again.status(), StatusCode::CREATED);

        let cutoff = chrono::Utc::now() - chrono::Duration::hours(24);
        assert_eq!(chat_service::service::attachments::sweep_unsent(&stack.chat, cutoff).await.unwrap(), 1);
        assert_eq!(stack.attachments_stored().await, (1, 2), "the sent image and its files stay");
        assert_error(stack.get(&ana, unsent["url"].as_str().unwrap()).await, 404, "not_found").await;
        assert_eq!(stack.get(&ana, sent["url"].as_str().unwrap()).await.status(), StatusCode::OK);
        assert_eq!(chat_service::service::attachments::sweep_unsent(&stack.chat, cutoff).await.unwrap(), 0);
    }

    async fn a_user_uploading_too_fast_is_held_back_alone(backend) {
        let stack = TestStack::spawn_with(backend, |config| config.uploads_per_minute = 2).await;
        let (ana, bob, _chat) = stack.ana_and_bob().await;
        stack.uploaded(&ana, 8, 8).await;
        stack.uploaded(&ana, 8, 8).await;
        let third = stack.upload(Some(&ana), "image/png", picture(8, 8, ImageFormat::Png)).await;
        let retry_after: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        assert_error(third, 429, "rate_limited").await;
        stack.uploaded(&bob, 8, 8).await;
        assert_eq!(stack.attachments_stored().await, (3, 6), "the refused upload stored nothing");
    }

    async fn bad_uploads_get_their_code_and_store_nothing(backend) {
        let stack = TestStack::spawn_with(backend, |config| {
            config.upload_max_bytes = 20_000;
            config.upload_max_pixels = 250_000;
        }).await;
        let ana = stack.user("ana").await;

        let too_big = stack.upload(Some(&ana), "image/png", vec![0x89; 20_001]).await;
        let body = assert_error(too_big, 413, "payload_too_large").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("20000"), "{body}");
        let text = stack.upload(Some(&ana), "image/png", b"definitely not a picture".to_vec()).await;
        assert_error(text, 415, "unsupported_media_type").await;
        let svg = stack.upload(Some(&ana), "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec()).await;
        assert_error(svg, 415, "unsupported_media_type").await;
        let mut truncated = picture(64, 64, ImageFormat::Png);
        truncated.truncate(80);
        assert_error(stack.upload(Some(&ana), "image/png", truncated).await, 422, "invalid_image").await;
        // Few bytes, many pixels: refused from the header, before anything is decoded.
        let wide = picture(1000, 300, ImageFormat::Png);
        assert!(wide.len() <= 20_000, "{} bytes", wide.len());
        let body = assert_error(stack.upload(Some(&ana), "image/png", wide).await, 422, "invalid_image").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("1000 × 300"), "{body}");
        assert_error(stack.upload(Some(&ana), "image/png", Vec::new()).await, 422, "invalid_image").await;
        assert_error(stack.upload(None, "image/png", picture(8, 8, ImageFormat::Png)).await, 401, "unauthorized").await;
        assert_eq!(stack.attachments_stored().await, (0, 0));

        // The limits are the limits: just under them is fine.
        let fits = stack.upload(Some(&ana), "application/octet-stream", picture(500, 500, ImageFormat::Png)).await;
        assert_eq!(fits.status(), StatusCode::CREATED, "{:?}", fits.text().await);
        assert_eq!(stack.attachments_stored().await, (1, 2));
    }
}
