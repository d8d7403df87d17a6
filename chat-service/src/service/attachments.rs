//! Images: uploaded, checked and cleaned once, then sent in messages and shown to their chats.
//!
//! An upload is decoded whatever it claims to be (the format comes from its bytes, not its
//! `Content-Type`), so what is stored is an image a browser can show, never a script or an HTML
//! page with an image's name. JPEG, PNG and WebP are re-encoded: that drops their metadata — a
//! phone's photo carries where it was taken — and applies the camera's rotation to the pixels, so
//! every client shows it upright. A GIF is kept as it came (its frames are the point, and the
//! format has no such metadata); an animated WebP keeps its first frame. Decoding runs on the
//! blocking pool, a CPU's worth of uploads at a time, with a cap on pixels checked from the header
//! before any pixel is decoded: a small file that unpacks into gigabytes is refused, not decoded.
//!
//! The bytes go to an object store: a directory, which instances share only on one host (a
//! volume), or an S3 bucket (`UPLOADS_URL`), which instances on any machine share. Both are one
//! `object_store` interface: the code below does not know which it has. The database row is
//! written after the bytes, so a row always has its image.
//!
//! Who may fetch an image: its uploader, and the participants of every chat whose messages carry
//! it. Only the uploader can attach it to a message.

use std::io::Cursor;
use std::sync::Arc;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{AttachmentDto, ImageDto};
use converge_shared::entities::chat::{attachment, message, participant};
use converge_shared::error::ErrorCode;
use converge_shared::rate_limit::PerKeyLimit;
use futures_util::{Stream, StreamExt};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::{Config, UploadsUrl};
use crate::context::AppContext;

/// JPEG quality of re-encoded photos: indistinguishable from the original at a phone's size.
const PHOTO_QUALITY: u8 = 85;
const THUMBNAIL_QUALITY: u8 = 80;

/// An S3 request is retried (a connection refused, a 5xx, a timeout) for at most this long, not
/// object_store's default of three minutes: an upload or a fetch waiting on an unreachable store
/// is answered `unavailable` while its client is still there to retry.
fn store_retry() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: std::time::Duration::from_secs(10), ..RetryConfig::default() }
}

/// Where images are kept, and how many are decoded at once.
#[derive(Clone)]
pub struct Uploads {
    store: Arc<dyn ObjectStore>,
    decoding: Arc<Semaphore>,
    per_user: Arc<PerKeyLimit<Uuid>>,
}

impl Uploads {
    /// The store of `config`: its S3 bucket, or its directory (created if missing). Nothing is
    /// sent to S3 yet: an unreachable bucket fails the uploads and fetches, not the start.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let store: Arc<dyn ObjectStore> = match &config.uploads_url {
            UploadsUrl::Directory => {
                let dir = config.uploads_dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot create the uploads directory {}: {e}", dir.display()))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            UploadsUrl::S3 { bucket, prefix } => {
                // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT,
                // AWS_ALLOW_HTTP…: the variables every S3 client reads, so an existing secret
                // or role works as it is.
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(store_retry())
                    .build()
                    .context("UPLOADS_URL: configuring S3 from the AWS_* variables")?;
                tracing::info!(%bucket, %prefix, "uploads kept in S3");
                if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) }
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_user = Arc::new(PerKeyLimit::per_minute(config.uploads_per_minute));
        Ok(Self { store, decoding: Arc::new(Semaphore::new(cpus)), per_user })
    }

    /// Counts an upload of `uploader`'s against their budget: `rate_limited` once it is spent.
    pub fn admit(&self, uploader: Uuid) -> ApiResult<()> {
        self.per_user.check(&uploader)
    }
}

/// Which file of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

/// An image's bytes as stored, ready to be sent.
pub struct ImageFile {
    pub content_type: String,
    pub bytes: u64,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, object_store::Error>> + Send>>,
}

/// Reads an upload of at most `UPLOAD_MAX_BYTES` from `body`, refusing it as soon as it is larger
/// (`declared` is its `Content-Length`, when the client sent one).
pub async fn read_upload<S, E>(config: &Config, declared: Option<u64>, mut body: S) -> ApiResult<Bytes>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let max = config.upload_max_bytes;
    let too_large = || {
        ApiError::new(ErrorCode::PayloadTooLarge, format!("an image has at most {} bytes ({})", max, human_size(max)))
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut bytes = BytesMut::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("the upload broke off: {e}")))?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidImage, "the body is empty: send the image's bytes"));
    }
    Ok(bytes.freeze())
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// Checks, cleans and stores an uploaded image of `uploader`'s.
pub async fn upload(ctx: &AppContext, uploader: Uuid, bytes: Bytes) -> ApiResult<AttachmentDto> {
    let uploads = &ctx.uploads;
    let max_pixels = ctx.config.upload_max_pixels;
    let prepared = {
        let _permit = uploads.decoding.acquire().await.map_err(anyhow::Error::from)?;
        tokio::task::spawn_blocking(move || prepare(bytes, max_pixels)).await.map_err(anyhow::Error::from)??
    };
    let id = Uuid::new_v4();
    let original = prepared.original.len() as i64;
    let stored = async {
        uploads.store.put(&path(id, Variant::Original), prepared.original.into()).await?;
        uploads.store.put(&path(id, Variant::Thumbnail), prepared.thumbnail.into()).await
    };
    if let Err(e) = stored.await {
        // The original may be stored: no row will name it, so it goes now or never.
        delete_files(uploads, id).await;
        return Err(store_failed(e));
    }
    let row = attachment::Model {
        id,
        uploader_id: uploader,
        content_type: prepared.content_type.to_owned(),
        bytes: original,
        width: prepared.width,
        height: prepared.height,
        thumbnail_content_type: prepared.thumbnail_type.to_owned(),
        created_at: chrono::Utc::now(),
    };
    let row = match row.into_active_model().insert(&ctx.db).await {
        Ok(row) => row,
        Err(e) => {
            // No row will ever name these bytes, so no sweep would find them.
            delete_files(uploads, id).await;
            return Err(e.into());
        }
    };
    metrics::counter!("attachments_uploaded_total").increment(1);
    Ok(row.to_dto())
}

/// Deletes an attachment's bytes; ones already gone (another instance's sweep) are fine.
async fn delete_files(uploads: &Uploads, id: Uuid) {
    for variant in [Variant::Original, Variant::Thumbnail] {
        match uploads.store.delete(&path(id, variant)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(%id, error = %e, "an upload's bytes could not be deleted"),
        }
    }
}

/// The image a send attaches: one `sender` uploaded. An upload no message carries is refused from
/// half its lifetime on, so a send never races [`sweep_unsent`] to an image it is deleting.
pub async fn for_message(ctx: &AppContext, sender: Uuid, id: Uuid) -> ApiResult<Box<ImageDto>> {
    let found = match attachment::Entity::find_by_id(id).one(&ctx.db).await? {
        Some(found) if found.uploader_id == sender => found,
        _ => return Err(ApiError::field("attachmentId", "no image you uploaded has this id")),
    };
    let half_life = chrono::Duration::seconds(i64::try_from(ctx.config.upload_unsent_ttl_secs / 2).unwrap_or(i64::MAX));
    if found.created_at < chrono::Utc::now() - half_life && !is_carried(ctx, id, None).await? {
        return Err(ApiError::field(
            "attachmentId",
            "this upload was never sent and has expired: upload the image again",
        ));
    }
    Ok(Box::new(ImageDto::new(found.id, found.width, found.height)))
}

/// Whether a message carries image `id`: any message, or (`seen_by`) one in a chat of that user's.
async fn is_carried(ctx: &AppContext, id: Uuid, seen_by: Option<Uuid>) -> ApiResult<bool> {
    let mut carriers =
        message::Entity::find().select_only().column(message::Column::Id).filter(message::Column::AttachmentId.eq(id));
    if let Some(viewer) = seen_by {
        let chats_of_viewer = Query::select()
            .column(participant::Column::ChatId)
            .from(participant::Entity)
            .and_where(participant::Column::UserId.eq(viewer))
            .to_owned();
        carriers = carriers.filter(Expr::col(message::Column::ChatId).in_subquery(chats_of_viewer));
    }
    let carrier: Option<Uuid> = carriers.limit(1).into_tuple().one(&ctx.db).await?;
    Ok(carrier.is_some())
}

/// Deletes the uploads made before `cutoff` that no message carries — an image picked and never
/// sent — with their bytes. Returns how many went.
pub async fn sweep_unsent(ctx: &AppContext, cutoff: chrono::DateTime<chrono::Utc>) -> ApiResult<usize> {
    let carried = Query::select()
        .column(message::Column::AttachmentId)
        .from(message::Entity)
        .and_where(message::Column::AttachmentId.is_not_null())
        .to_owned();
    let unsent: Vec<Uuid> = attachment::Entity::find()
        .select_only()
        .column(attachment::Column::Id)
        .filter(attachment::Column::CreatedAt.lt(cutoff))
        .filter(Expr::col(attachment::Column::Id).not_in_subquery(carried))
        .limit(500)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    for id in &unsent {
        // The row first: an image is never named by a row without its bytes. Bytes a crash leaves
        // behind are only disk, and another instance sweeping at once finds them gone: both fine.
        attachment::Entity::delete_by_id(*id).exec(&ctx.db).await?;
        delete_files(&ctx.uploads, *id).await;
    }
    if !unsent.is_empty() {
        tracing::info!(count = unsent.len(), "unsent uploads swept");
    }
    metrics::counter!("attachments_swept_total").increment(unsent.len() as u64);
    Ok(unsent.len())
}

/// Sweeps unsent uploads older than `UPLOAD_UNSENT_TTL_SECS`, every tenth of it.
pub async fn sweep_periodically(ctx: AppContext) {
    let ttl = std::time::Duration::from_secs(Ord::max(ctx.config.upload_unsent_ttl_secs, 10));
    let mut every = tokio::time::interval(ttl / 10);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        if let Err(e) = sweep_unsent(&ctx, cutoff).await {
            tracing::warn!(error = %e, "sweeping unsent uploads failed; the next round tries again");
        }
    }
}

/// An image `viewer` may see: theirs, or carried by a message of one of their chats. Any other is
/// `not_found`, whether it exists or not.
pub async fn open(ctx: &AppContext, viewer: Uuid, id: Uuid, variant: Variant) -> ApiResult<ImageFile> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such image");
    let found = attachment::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(not_found)?;
    if found.uploader_id != viewer && !is_carried(ctx, id, Some(viewer)).await? {
        return Err(not_found());
    }
    let stored = ctx.uploads.store.get(&path(id, variant)).await.map_err(store_failed)?;
    let content_type = match variant {
        Variant::Original => found.content_type,
        Variant::Thumbnail => found.thumbnail_content_type,
    };
    Ok(ImageFile { content_type, bytes: stored.meta.size, body: stored.into_stream() })
}

/// A store's failure: an image's bytes missing is a fault of ours (500); anything else — the store
/// unreachable, slow or refusing us — is worth retrying (503), as when the database is away.
fn store_failed(e: object_store::Error) -> ApiError {
    match e {
        object_store::Error::NotFound { .. } => {
            ApiError::Internal(anyhow::Error::new(e).context("an image's bytes are missing from the store"))
        }
        e => ApiError::Unavailable(anyhow::Error::new(e).context("the image store")),
    }
}

fn path(id: Uuid, variant: Variant) -> StorePath {
    // Flat, one directory per variant: deleting a file leaves no empty directory behind.
    let dir = match variant {
        Variant::Original => "images",
        Variant::Thumbnail => "thumbnails",
    };
    StorePath::from(format!("{dir}/{id}"))
}

/// An upload made ready to store.
#[derive(Debug)]
struct Prepared {
    original: Bytes,
    content_type: &'static str,
    width: i32,
    height: i32,
    thumbnail: Bytes,
    thumbnail_type: &'static str,
}

/// Decodes `bytes`, checks them, and makes the stored image and its thumbnail. CPU-bound: run on
/// the blocking pool.
fn prepare(bytes: Bytes, max_pixels: u64) -> ApiResult<Prepared> {
    let unsupported =
        || ApiError::new(ErrorCode::UnsupportedMediaType, "the upload is not a PNG, JPEG, GIF or WebP image");
    let reader = ImageReader::new(Cursor::new(&bytes[..])).with_guessed_format().map_err(|_| unsupported())?;
    let format = reader.format().ok_or_else(unsupported)?;
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) {
        return Err(unsupported());
    }
    let unreadable = |e: image::ImageError| {
        ApiError::new(ErrorCode::InvalidImage, format!("the {} image cannot be read: {e}", name(format)))
    };
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ApiError::new(
            ErrorCode::InvalidImage,
            format!(
                "the image is {width} × {height} pixels; at most {} megapixels are accepted",
                megapixels(max_pixels)
            ),
        ));
    }
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    let (original, content_type) = if format == ImageFormat::Gif {
        (bytes, "image/gif")
    } else {
        image.apply_orientation(orientation);
        let png = format == ImageFormat::Png || image.color().has_alpha();
        encode(&image, png, PHOTO_QUALITY)?
    };
    let (width, height) = (image.width(), image.height());
    let max = ImageDto::THUMBNAIL_MAX;
    let small = if width > max || height > max { image.thumbnail(max, max) } else { image };
    // A photo is smaller as JPEG, a screenshot or a drawing as PNG (and sharper): at this size
    // making both costs a millisecond, and the smaller one is what every client downloads.
    let png = encode(&small, true, THUMBNAIL_QUALITY)?;
    let (thumbnail, thumbnail_type) = if small.color().has_alpha() {
        png
    } else {
        std::cmp::min_by_key(png, encode(&small, false, THUMBNAIL_QUALITY)?, |(bytes, _)| bytes.len())
    };
    let to_i32 = |n: u32| i32::try_from(n).map_err(|_| unsupported());
    Ok(Prepared { original, content_type, width: to_i32(width)?, height: to_i32(height)?, thumbnail, thumbnail_type })
}

/// `image` as PNG (lossless, keeps transparency) or as a JPEG of `quality`.
fn encode(image: &DynamicImage, png: bool, quality: u8) -> ApiResult<(Bytes, &'static str)> {
    let mut out = Cursor::new(Vec::new());
    let written = if png {
        image.write_to(&mut out, ImageFormat::Png)
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8()).write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
    };
    written.map_err(|e| anyhow::anyhow!("encoding an image: {e}"))?;
    Ok((out.into_inner().into(), if png { "image/png" } else { "image/jpeg" }))
}

/// `pixels` in millions, as a person reads it: 25, 0.25.
fn megapixels(pixels: u64) -> String {
    let text = format!("{:.2}", pixels as f64 / 1e6);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Bytes {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner().into()
    }

    #[test]
    fn a_photo_is_reencoded_and_gets_a_thumbnail_that_fits() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(1200, 600, Rgb([200, 30, 30])));
        let prepared = prepare(encoded(&photo, ImageFormat::Jpeg), 25_000_000).unwrap();
        assert_eq!((prepared.content_type, prepared.width, prepared.height), ("image/jpeg", 1200, 600));
        let thumbnail = image::load_from_memory(&prepared.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 160));
    }

    #[test]
    fn a_photo_is_turned_upright_and_loses_its_metadata() {
        let photo =
            encoded(&DynamicImage::ImageRgb8(RgbImage::from_pixel(60, 20, Rgb([10, 200, 10]))), ImageFormat::Jpeg);
        // An EXIF segment right after the JPEG's start: orientation 6, "rotate 90° clockwise to show".
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        let exif: Vec<u8> = [b"Exif\0\0".as_slice(), &tiff].concat();
        let length = u16::try_from(exif.len() + 2).unwrap().to_be_bytes();
        let tagged: Vec<u8> = [&photo[..2], &[0xFF, 0xE1], &length, &exif, &photo[2..]].concat();
        assert_eq!(
            ImageReader::new(Cursor::new(&tagged))
                .with_guessed_format()
                .unwrap()
                .into_decoder()
                .unwrap()
                .orientation()
                .unwrap(),
            image::metadata::Orientation::Rotate90
        );

        let prepared = prepare(tagged.into(), 25_000_000).unwrap();
        assert_eq!((prepared.width, prepared.height), (20, 60), "stored upright");
        assert!(!prepared.original.windows(4).any(|w| w == b"Exif"), "the metadata is gone");
    }

    #[test]
    fn a_drawing_gets_the_smaller_png_thumbnail_and_a_photo_the_jpeg_one() {
        // Flat colour, as a screenshot or a drawing: PNG compresses it to almost nothing.
        let drawing = DynamicImage::ImageRgb8(RgbImage::from_pixel(800, 600, Rgb([250, 250, 250])));
        assert_eq!(prepare(encoded(&drawing, ImageFormat::Png), 25_000_000).unwrap().thumbnail_type, "image/png");
        // Noise, as the fine detail of a photo: JPEG is far smaller.
        let mut state = 7u32;
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(800, 600, |_, _| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let [a, b, c, _] = state.to_le_bytes();
            Rgb([a, b, c])
        }));
        assert_eq!(prepare(encoded(&photo, ImageFormat::Png), 25_000_000).unwrap().thumbnail_type, "image/jpeg");
    }

    #[test]
    fn a_small_transparent_image_stays_png_and_is_not_enlarged() {
        let icon = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([0, 0, 255, 128])));
        let prepared = prepare(encoded(&icon, ImageFormat::WebP), 25_000_000).unwrap();
        assert_eq!((prepared.content_type, prepared.thumbnail_type), ("image/png", "image/png"));
        let thumbnail = image::load_from_memory(&prepared.thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (40, 30));
        assert_eq!(thumbnail.to_rgba8().get_pixel(0, 0), &Rgba([0, 0, 255, 128]));
    }

    #[test]
    fn a_gif_is_kept_as_it_came() {
        let gif =
            encoded(&DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([9, 9, 9, 255]))), ImageFormat::Gif);
        let prepared = prepare(gif.clone(), 25_000_000).unwrap();
        assert_eq!(prepared.original, gif);
        assert_eq!(prepared.content_type, "image/gif");
    }

    #[test]
    fn too_many_pixels_are_refused_before_decoding_and_other_formats_are_unsupported() {
        let big = DynamicImage::ImageRgb8(RgbImage::new(2000, 2000));
        let refused = prepare(encoded(&big, ImageFormat::Png), 3_999_999).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidImage);
        assert!(refused.to_string().contains("2000 × 2000"), "{refused}");
        let bmp = Bytes::from_static(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0");
        assert_eq!(prepare(bmp, 100).unwrap_err().code(), ErrorCode::UnsupportedMediaType);
        assert_eq!(
            prepare(Bytes::from_static(b"<svg onload=alert(1)>"), 100).unwrap_err().code(),
            ErrorCode::UnsupportedMediaType
        );
        let truncated = encoded(&DynamicImage::ImageRgb8(RgbImage::new(64, 64)), ImageFormat::Png).slice(..60);
        assert_eq!(prepare(truncated, 1_000_000).unwrap_err().code(), ErrorCode::InvalidImage);
    }
}
