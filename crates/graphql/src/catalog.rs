//! The catalog area's queries: who is asking, the users, the funnels and their stages.

use async_graphql::{Context, Object, Result, SimpleObject};

use crate::types::{user, Stage, User};
use crate::{actor, AppState};

#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "FunnelStage")]
pub struct FunnelStageGql {
    pub key: String,
    pub name: String,
    pub colour: String,
    pub stage: Stage,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Funnel {
    pub id: String,
    pub name: String,
    pub stages: Vec<FunnelStageGql>,
}

/// The catalog area's queries.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The user the bearer token names.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let a = actor(ctx)?;
        Ok(user(&ctx.data_unchecked::<AppState>().catalog, a.user))
    }

    async fn funnels(&self, ctx: &Context<'_>) -> Result<Vec<Funnel>> {
        actor(ctx)?;
        let catalog = &ctx.data_unchecked::<AppState>().catalog;
        Ok(catalog
            .funnels
            .iter()
            .map(|f| Funnel {
                id: f.id.to_string(),
                name: f.name.clone(),
                stages: f
                    .stages
                    .iter()
                    .map(|s| FunnelStageGql {
                        key: s.key.to_string(),
                        name: s.name.clone(),
                        colour: s.colour.clone(),
                        stage: s.stage.into(),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn users(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        actor(ctx)?;
        let catalog = &ctx.data_unchecked::<AppState>().catalog;
        Ok(catalog.users.iter().map(|u| user(catalog, u.id)).collect())
    }
}
