//! The list convention of every REST list endpoint: `page` (1-based, default 1), `limit`
//! (default 20, at most 200) and `search`; answers carry `data`, `total`, `page`, `limit`.

use super::error::ApiError;
use crate::model::PageRequest;

/// Validates `page` and `limit` query parameters into a page request.
pub fn page_request(page: Option<u32>, limit: Option<u32>) -> Result<PageRequest, ApiError> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request("page", "page starts at 1"));
    }
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit must be between 1 and {}", PageRequest::MAX_LIMIT),
        ));
    }
    Ok(PageRequest { page, limit })
}

/// Trims `search`; an empty or whitespace-only value means no search. Over 200 characters is
/// refused.
pub fn search_term(search: Option<String>) -> Result<Option<String>, ApiError> {
    match search.map(|s| s.trim().to_owned()) {
        Some(s) if s.chars().count() > 200 => Err(ApiError::bad_request(
            "search",
            "search is limited to 200 characters",
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            page_request(None, None).unwrap(),
            PageRequest { page: 1, limit: 20 }
        );
        assert!(page_request(Some(0), None).is_err());
        assert!(page_request(None, Some(201)).is_err());
        assert!(page_request(None, Some(0)).is_err());
        assert_eq!(page_request(Some(3), Some(200)).unwrap().offset(), 400);
        assert_eq!(search_term(Some("  ".into())).unwrap(), None);
    }
}
