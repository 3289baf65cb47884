//! `schemas/graphql/schema.graphql` is generated from the schema; when it is out of date this
//! test rewrites it and fails, so the change shows up in review.

use std::path::Path;

#[test]
fn the_checked_in_sdl_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/graphql/schema.graphql");
    let sdl = leadflow_graphql::sdl();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != sdl {
        std::fs::write(&path, &sdl).expect("write the SDL");
        panic!("schemas/graphql/schema.graphql was out of date and has been rewritten: commit the updated file");
    }
}

#[test]
fn the_sdl_speaks_screaming_case_and_relay() {
    let sdl = leadflow_graphql::sdl();
    assert!(sdl.contains("AWAITING_SALE"), "enums are SCREAMING_CASE");
    assert!(sdl.contains("pageInfo: PageInfo!"), "relay connections");
    assert!(sdl.contains("totalCount: Int!"));
    assert!(sdl.contains("idempotencyKey: String"));
}
