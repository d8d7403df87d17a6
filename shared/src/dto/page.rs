use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of a cursor-paginated list. Pass `nextCursor` back as `cursor` to get the next page;
/// it is absent on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
