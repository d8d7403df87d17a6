//! Images across instances: whichever instance took an upload, every instance serves it, stops
//! serving it with its message, and sweeps it unsent — from a directory the instances share (one
//! host's volume) or from an S3 bucket (instances on any machine, each with a directory of its own).

use std::process::Stdio;

use converge_shared::entities::chat::attachment;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{Cluster, S3Bucket, User, free_port};

/// Where the instances keep images.
enum Store {
    SharedDirectory(tempfile::TempDir),
    S3(S3Bucket),
}

impl Store {
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::SharedDirectory(dir) => vec![("UPLOADS_DIR".into(), dir.path().display().to_string())],
            Self::S3(bucket) => bucket.uploads_env(),
        }
    }

    /// What is stored, as `images/<id>` and `thumbnails/<id>`, sorted.
    async fn stored(&self) -> Vec<String> {
        match self {
            Self::SharedDirectory(dir) => {
                let mut files = Vec::new();
                for variant in ["images", "thumbnails"] {
                    for entry in std::fs::read_dir(dir.path().join(variant)).into_iter().flatten() {
                        files.push(format!("{variant}/{}", entry.unwrap().file_name().to_string_lossy()));
                    }
                }
                files.sort();
                files
            }
            Self::S3(bucket) => bucket.keys().await,
        }
    }

    /// Deletes what the test stored where it outlives the test: a server the run reuses.
    async fn clear(&self) {
        if let Self::S3(bucket) = self {
            bucket.clear().await;
        }
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let pixels = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    image::DynamicImage::ImageRgb8(pixels).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(cluster: &Cluster, user: &User, via: usize, bytes: Vec<u8>) -> String {
    let res = cluster
        .client
        .post(format!("{}/attachments", cluster.instance(via).http()))
        .bearer_auth(&user.token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// `GET path` through instance `via` as `user`: the status and the body.
async fn fetch(cluster: &Cluster, user: &User, path: &str, via: usize) -> (StatusCode, bytes::Bytes) {
    let res = cluster.client.get(format!("{}{path}", cluster.instance(via).http())).bearer_auth(&user.token);
    let res = res.send().await.unwrap();
    (res.status(), res.bytes().await.unwrap())
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("an image");
    (image.width(), image.height())
}

fn stored_files(ids: &[&str]) -> Vec<String> {
    let mut files: Vec<String> =
        ids.iter().flat_map(|id| [format!("images/{id}"), format!("thumbnails/{id}")]).collect();
    files.sort();
    files
}

/// Ana uploads through instance 0, Bob fetches through instance 1; instance 1 sweeps unsent uploads
/// (every second: the shortest lifetime), instance 0 keeps the default day, so one sweep does it.
async fn images_are_shared_by_instances_through(store: &Store) -> Cluster {
    let env = store.env();
    let cluster = Cluster::start_each(2, |i| {
        let mut env = env.clone();
        if i == 1 {
            env.push(("UPLOAD_UNSENT_TTL_SECS".into(), "10".into()));
        }
        env
    })
    .await;
    let (ana, bob) = (cluster.user("ana").await, cluster.user("bob").await);
    let chat = cluster.group(&ana, &[&bob]).await;
    let mut ana_ws = cluster.connect(&ana, 0).await;
    let mut bob_ws = cluster.connect(&bob, 1).await;

    let kept = upload(&cluster, &ana, 0, png(400, 100)).await;
    let deleted = upload(&cluster, &ana, 0, png(50, 50)).await;
    let unsent = upload(&cluster, &ana, 0, png(30, 30)).await;
    assert_eq!(store.stored().await, stored_files(&[&kept, &deleted, &unsent]), "each upload and its thumbnail");
    for (req, id) in [("i1", &kept), ("i2", &deleted)] {
        ana_ws
            .send(json!({ "type": "send_message", "req": req, "chatId": chat, "clientMsgId": req, "attachmentId": id }))
            .await;
        let reply = ana_ws.until(|f| f["req"] == req && (f["type"] == "ack" || f["type"] == "error")).await;
        assert_eq!(reply.as_ref().map(|r| &r["type"]), Some(&json!("ack")), "{reply:?}");
    }

    let delivered = bob_ws.until(|f| f["type"] == "new_message").await.expect("relayed to the other instance");
    let image = &delivered["message"]["image"];
    assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (Some(400), Some(100)));
    let (status, original) = fetch(&cluster, &bob, image["url"].as_str().unwrap(), 1).await;
    assert_eq!(status, StatusCode::OK, "the original, through the other instance");
    assert_eq!(dimensions(&original), (400, 100));
    let (status, thumbnail) = fetch(&cluster, &bob, image["thumbnailUrl"].as_str().unwrap(), 1).await;
    assert_eq!(status, StatusCode::OK, "the thumbnail, through the other instance");
    assert_eq!(dimensions(&thumbnail), (320, 80), "the thumbnail the first instance made");
    assert_eq!(fetch(&cluster, &ana, image["url"].as_str().unwrap(), 0).await.1, original, "the same bytes everywhere");

    // A deleted message's image is no longer Bob's to see, through either instance.
    bob_ws.until(|f| f["type"] == "new_message" && f["message"]["seq"] == 2).await.expect("the second image");
    let message = format!("{}/chats/{chat}/messages/2", cluster.instance(1).http());
    let res = cluster.client.delete(message).bearer_auth(&ana.token);
    assert_eq!(res.send().await.unwrap().status(), StatusCode::OK);
    for via in [0, 1] {
        assert_eq!(fetch(&cluster, &bob, &format!("/attachments/{deleted}"), via).await.0, StatusCode::NOT_FOUND);
    }

    // A day later, the uploads no message carries (the deleted message's and the never sent) are
    // swept, rows and bytes; the sent one stays.
    let swept = cluster.instance(1).logged("unsent uploads swept");
    let db = sea_orm::Database::connect(&cluster.chat_database).await.unwrap();
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(25);
    attachment::Entity::update_many()
        .col_expr(attachment::Column::CreatedAt, sea_orm::sea_query::Expr::value(day_ago))
        .exec(&db)
        .await
        .unwrap();
    swept.await;
    assert_eq!(store.stored().await, stored_files(&[&kept]));
    for id in [&deleted, &unsent] {
        assert_eq!(fetch(&cluster, &ana, &format!("/attachments/{id}"), 0).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(fetch(&cluster, &bob, image["thumbnailUrl"].as_str().unwrap(), 0).await.1, thumbnail);
    store.clear().await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_shared_by_instances_through_a_shared_directory() {
    images_are_shared_by_instances_through(&Store::SharedDirectory(tempfile::tempdir().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_shared_by_instances_through_s3_without_a_shared_directory() {
    let cluster = images_are_shared_by_instances_through(&Store::S3(S3Bucket::new())).await;
    for i in 0..2 {
        let own = cluster.data_dir(i).join("uploads");
        assert!(!own.exists(), "instance {i} kept nothing in {}", own.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_answers_uploads_and_fetches_unavailable_and_keeps_no_row() {
    // The bucket's settings, but nothing listens where they point.
    let mut bucket = S3Bucket::new();
    bucket.endpoint = format!("http://127.0.0.1:{}", free_port());
    let cluster = Cluster::start_each(1, |_| bucket.uploads_env()).await;
    let ana = cluster.user("ana").await;
    let unavailable = |res: reqwest::Response| async move {
        let retry_after = res.headers().get("retry-after").is_some();
        (res.status(), retry_after, res.json::<Value>().await.unwrap()["error"]["code"].clone())
    };

    let res = cluster
        .client
        .post(format!("{}/attachments", cluster.instance(0).http()))
        .bearer_auth(&ana.token)
        .header("content-type", "image/png")
        .body(png(40, 40))
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable(res).await, (StatusCode::SERVICE_UNAVAILABLE, true, json!("unavailable")));
    let db = sea_orm::Database::connect(&cluster.chat_database).await.unwrap();
    assert!(attachment::Entity::find().all(&db).await.unwrap().is_empty(), "no row names bytes never stored");

    // An image recorded while the store answered is fetched while it does not.
    let id = uuid::Uuid::new_v4();
    let row = attachment::Model {
        id,
        uploader_id: ana.id,
        content_type: "image/png".into(),
        bytes: 100,
        width: 40,
        height: 40,
        thumbnail_content_type: "image/jpeg".into(),
        created_at: chrono::Utc::now(),
    };
    attachment::Entity::insert(attachment::ActiveModel::from(row)).exec(&db).await.unwrap();
    let res = cluster.client.get(format!("{}/attachments/{id}", cluster.instance(0).http())).bearer_auth(&ana.token);
    assert_eq!(
        unavailable(res.send().await.unwrap()).await,
        (StatusCode::SERVICE_UNAVAILABLE, true, json!("unavailable"))
    );
}

#[tokio::test]
async fn a_wrong_uploads_url_stops_the_start_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in
        [("gs://converge-uploads", "the scheme gs:// is not supported"), ("s3://Uploads", "a bucket name")]
    {
        let started = Command::new(env!("CARGO_BIN_EXE_chat-service"))
            .env("UPLOADS_URL", url)
            .env("DATA_DIR", dir.path())
            .env("CHAT_SERVICE_PORT", "0")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(crate::helpers::EVENT_TIMEOUT, started).await.expect("exits").unwrap();
        assert!(!output.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says) && stderr.contains("UPLOADS_URL is s3://bucket"), "{url}: {stderr}");
    }
}
