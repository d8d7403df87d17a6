//! The GraphQL schema published in `docs/` is the one the service serves.

#[test]
fn exported_sdl_matches_the_schema() {
    let exported = include_str!("../../../docs/user-service.graphql");
    assert!(
        user_service::graphql::sdl() == exported,
        "docs/user-service.graphql is out of date; regenerate it with \
         `cargo run -p user-service -- sdl > docs/user-service.graphql`"
    );
}
