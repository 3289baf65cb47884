//! GraphQL latency for `/metrics`: each root field a request resolves is timed and recorded
//! under `leadflow_graphql_seconds{type, field}`. The labels come from the schema (a field that
//! is not in it never passes validation), so a client cannot grow the series by naming its
//! operations; introspection is left out.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};

/// The async-graphql extension that times root fields.
pub struct Timing;

impl ExtensionFactory for Timing {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TimingExtension)
    }
}

struct TimingExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for TimingExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        let kind = match info.parent_type {
            "Mutation" => "mutation",
            "Subscription" => "subscription",
            _ => "query",
        };
        let field = info.name.to_owned();
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(
            "leadflow_graphql_seconds",
            "type" => kind, "field" => field, "outcome" => outcome
        )
        .record(started.elapsed().as_secs_f64());
        result
    }
}
