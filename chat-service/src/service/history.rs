//! Reading recent history through the hot window: resume backlogs and recent pages are served from
//! it when it holds every message asked for, from the database otherwise.

use converge_shared::api_error::ApiResult;
use converge_shared::dto::{MessageDto, MessagePage, MessagesQuery};
use converge_shared::entities::chat;
use uuid::Uuid;

use super::messages;
use crate::context::AppContext;

/// Up to `limit` messages after `after_seq`, up to `until` (a seq the caller knows is stored), in
/// order: the backlog of a resume or a gap (the caller checked access).
pub async fn backlog(
    ctx: &AppContext,
    chat_id: Uuid,
    after_seq: i64,
    until: i64,
    limit: u64,
) -> ApiResult<Vec<MessageDto>> {
    let to = until.min(after_seq.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX)));
    if to <= after_seq {
        return Ok(Vec::new());
    }
    if let Some(messages) = from_window(ctx, chat_id, after_seq + 1, to).await {
        return Ok(messages);
    }
    messages::after(&ctx.db, chat_id, after_seq, limit).await
}

/// A history page served from the window, if the window holds all of it; `None` means the caller
/// reads the database (which also reports invalid queries).
pub async fn page_from_window(
    ctx: &AppContext,
    chat: &chat::chat::Model,
    query: &MessagesQuery,
    limit: u64,
) -> Option<MessagePage> {
    let limit = i64::try_from(limit).ok().filter(|l| *l > 0)?;
    let (from, to, has_more) = match (query.after, query.before) {
        (Some(after), None) if (0..=chat.last_seq).contains(&after) => {
            let to = chat.last_seq.min(after.saturating_add(limit));
            (after + 1, to, to < chat.last_seq)
        }
        (None, before) => {
            let to = chat.last_seq.min(before.unwrap_or(i64::MAX).saturating_sub(1));
            let from = (to - limit + 1).max(1);
            (from, to, from > 1)
        }
        _ => return None,
    };
    if from > to {
        return None;
    }
    let messages = from_window(ctx, chat.id, from, to).await?;
    Some(MessagePage { messages, has_more })
}

async fn from_window(ctx: &AppContext, chat_id: Uuid, from: i64, to: i64) -> Option<Vec<MessageDto>> {
    match ctx.window.range(chat_id, from, to).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(%chat_id, error = format!("{e:#}"), "window unavailable; reading the database");
            None
        }
    }
}
