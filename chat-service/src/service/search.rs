//! Finding messages by their text, across the chats a user is in.
//!
//! A substring match, ignoring case, over the messages of the viewer's chats, newest first. Message
//! ids are UUIDv7 — ordered by the time they were stored — so the id is both the order and the
//! cursor. It reads without an index of words: the same query runs on PostgreSQL and SQLite, and
//! what it reads is the messages of the chats searched, found by their `(chat_id, seq)` index.

use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::dto::{SearchQuery, SearchResults};
use converge_shared::entities::chat::message;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use validator::Validate;

use super::IDS_PER_QUERY;
use super::chats::{chat_ids_of, require_participant};
use crate::context::AppContext;

const DEFAULT_LIMIT: u64 = 20;
const MIN_CHARS: usize = 2;
const MAX_CHARS: usize = 100;

/// The viewer's messages whose text contains `query.q`, newest first.
pub async fn messages(ctx: &AppContext, viewer: uuid::Uuid, query: SearchQuery) -> ApiResult<SearchResults> {
    query.validate()?;
    let text = query.q.trim();
    let chars = text.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(ApiError::field("q", format!("must be {MIN_CHARS} to {MAX_CHARS} characters")));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    // The chats are named rather than joined: given a list, PostgreSQL reads those chats' messages
    // by their index; joined, it scanned every message of every chat (400 000 rows for a user in
    // three chats of 200 messages each, where the list reads 600).
    let chats = match query.chat_id {
        Some(chat_id) => {
            require_participant(&ctx.db, chat_id, viewer).await?;
            vec![chat_id]
        }
        None => chat_ids_of(&ctx.db, viewer).await?,
    };
    let mut select = message::Entity::find()
        .filter(message::Column::DeletedAt.is_null())
        .filter(Expr::expr(Func::lower(Expr::col(message::Column::Content))).like(contains(text)));
    if let Some(before) = query.before {
        select = select.filter(message::Column::Id.lt(before));
    }
    let mut found = Vec::new();
    for ids in chats.chunks(IDS_PER_QUERY) {
        let in_these = select.clone().filter(message::Column::ChatId.is_in(ids.iter().copied()));
        found.extend(in_these.order_by_desc(message::Column::Id).limit(limit + 1).all(&ctx.db).await?);
    }
    // Each list's newest; of all of them, the newest.
    found.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
    let has_more = found.len() as u64 > limit;
    found.truncate(limit as usize);
    Ok(SearchResults { messages: found.iter().map(message::Model::to_dto).collect(), has_more })
}

/// `LIKE` pattern for text containing `text`, lower-cased as the column is: `%` and `_` in the
/// text match themselves.
fn contains(text: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}
