//! The depth limits: one for data, one for introspection.
//!
//! The standard introspection queries (graphql-js 16's `getIntrospectionQuery`, graphql-core
//! 3.3's `get_introspection_query`, which GraphiQL, Apollo, GraphQL Code Generator and Python
//! clients send) nest `ofType` up to nine levels to unwrap types such as `[[String!]!]!`, deeper
//! than any data selection needs. So each root field is measured on its own: `__schema` and
//! `__type` against [`MAX_INTROSPECTION_DEPTH`], exactly what those queries use, and every data
//! field against [`MAX_DEPTH`]. Nothing is exempted by name: an introspection nested one level
//! deeper than the standard queries is refused, and so is a data selection past its limit in
//! the same request. The complexity limit still covers the whole query.
//!
//! Depth counts fields as async-graphql does (fragments expand in place, a root field is level
//! 1); a fragment's depth is computed once, so fan-out through many spreads costs nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Data selections: deep enough for the card with its tasks and users, far too shallow for
/// abuse.
pub const MAX_DEPTH: usize = 10;

/// Introspection: `__schema { types { fields { args { type` (5), nine `ofType` and a leaf: the
/// deepest field of the standard queries of graphql-js 16 and graphql-core 3.3 with every option.
pub const MAX_INTROSPECTION_DEPTH: usize = 15;

/// Fragments spread inside fragments, at most: far beyond any real query, and it bounds the
/// check's own recursion (a chain of thousands fits in a request body).
const MAX_FRAGMENT_NESTING: usize = 32;

/// The message of a refused query, as async-graphql words its own.
pub const TOO_DEEP: &str = "Query is nested too deep.";

/// The async-graphql extension that applies [`check`] to every parsed query.
pub struct DepthLimits;

impl ExtensionFactory for DepthLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthLimitsExtension)
    }
}

struct DepthLimitsExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for DepthLimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check(&document)?;
        Ok(document)
    }
}

/// Refuses a document with a data field deeper than [`MAX_DEPTH`] or an introspection field
/// deeper than [`MAX_INTROSPECTION_DEPTH`].
pub fn check(document: &ExecutableDocument) -> ServerResult<()> {
    let mut depths = Depths {
        document,
        known: HashMap::new(),
        open: Vec::new(),
        roots_seen: HashSet::new(),
    };
    for (_, operation) in document.operations.iter() {
        depths.roots_seen.clear();
        let mut roots = Vec::new();
        depths.root_fields(&operation.node.selection_set.node, &mut roots);
        for (name, below) in roots {
            let limit = match name {
                "__schema" | "__type" => MAX_INTROSPECTION_DEPTH,
                _ => MAX_DEPTH,
            };
            if 1 + below > limit {
                return Err(ServerError::new(TOO_DEEP, None));
            }
        }
    }
    Ok(())
}

/// A depth past every limit: fragments nested past [`MAX_FRAGMENT_NESTING`].
const TOO_MANY: usize = usize::MAX / 2;

struct Depths<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's depth, once measured.
    known: HashMap<&'a str, usize>,
    /// The fragments being measured: a cycle (refused later by validation) counts as 0.
    open: Vec<&'a str>,
    /// Fragments whose root fields this operation has collected: once is enough.
    roots_seen: HashSet<&'a str>,
}

impl<'a> Depths<'a> {
    /// The operation's root fields with the depth of their selections, through fragments.
    fn root_fields(&mut self, set: &'a SelectionSet, out: &mut Vec<(&'a str, usize)>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let below = self.of(&field.node.selection_set.node);
                    out.push((field.node.name.node.as_str(), below));
                }
                Selection::InlineFragment(inline) => {
                    self.root_fields(&inline.node.selection_set.node, out)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if !self.roots_seen.insert(name) {
                        continue;
                    }
                    if self.open.len() >= MAX_FRAGMENT_NESTING {
                        out.push(("", TOO_MANY));
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(name) {
                        self.open.push(name);
                        self.root_fields(&fragment.node.selection_set.node, out);
                        self.open.pop();
                    }
                }
            }
        }
    }

    /// How many levels of fields `set` nests (0 for an empty set).
    fn of(&mut self, set: &'a SelectionSet) -> usize {
        let mut deepest = 0;
        for item in &set.items {
            let depth = match &item.node {
                Selection::Field(field) => 1 + self.of(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => self.of(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            deepest = deepest.max(depth);
        }
        deepest
    }

    fn fragment(&mut self, name: &'a str) -> usize {
        if let Some(depth) = self.known.get(name) {
            return *depth;
        }
        if self.open.contains(&name) {
            return 0;
        }
        if self.open.len() >= MAX_FRAGMENT_NESTING {
            return TOO_MANY;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return 0; // unknown: validation names it
        };
        self.open.push(name);
        let depth = self.of(&fragment.node.selection_set.node);
        self.open.pop();
        self.known.insert(name, depth);
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn depth_ok(query: &str) -> bool {
        check(&parse_query(query).expect("parses")).is_ok()
    }

    /// `{ f1 { f2 { ... fN } } }` nested under `root`.
    fn nested(root: &str, levels: usize) -> String {
        let mut query = "leaf".to_owned();
        for i in 1..levels {
            query = format!("f{i} {{ {query} }}");
        }
        format!("{{ {root} {{ {query} }} }}")
    }

    #[test]
    fn data_may_nest_ten_levels_and_no_more() {
        assert!(depth_ok(&nested("lead", 9)));
        assert!(!depth_ok(&nested("lead", 10)));
    }

    #[test]
    fn introspection_may_nest_fifteen_levels_and_no_more() {
        assert!(depth_ok(&nested("__schema", 14)));
        assert!(!depth_ok(&nested("__schema", 15)));
        assert!(depth_ok(&nested("__type(name: \"Lead\")", 14)));
        assert!(!depth_ok(&nested("__type(name: \"Lead\")", 15)));
    }

    #[test]
    fn introspection_does_not_lift_the_data_limit_of_the_same_request() {
        let query = format!(
            "{{ __schema {{ types {{ name }} }} {} }}",
            &nested("lead", 10)[1..nested("lead", 10).len() - 1]
        );
        assert!(!depth_ok(&query));
    }

    #[test]
    fn depth_is_measured_through_fragments() {
        // Depth is measured through fragments, at the root and below.
        let deep = nested("x", 10);
        let body = &deep[1..deep.len() - 1];
        let query = format!("query {{ ...Root }} fragment Root on Query {{ {body} }}");
        assert!(!depth_ok(&query));
        let query = format!(
            "{{ lead {{ ...F }} }} fragment F on Lead {{ {} }}",
            &nested("a", 9)[1..nested("a", 9).len() - 1]
        );
        assert!(!depth_ok(&query));
    }

    #[test]
    fn fragment_cycles_and_fan_out_end() {
        assert!(depth_ok(
            "{ lead { ...A } } fragment A on Lead { id ...B } fragment B on Lead { ...A }"
        ));
        // 30 levels of 10 spreads each would be 10^30 expansions without memoising.
        let mut fragments = String::from("fragment F0 on T { leaf }\n");
        for i in 1..30 {
            let spreads = (0..10)
                .map(|_| format!("...F{}", i - 1))
                .collect::<Vec<_>>();
            fragments += &format!("fragment F{i} on T {{ {} }}\n", spreads.join(" "));
        }
        assert!(depth_ok(&format!("{{ lead {{ ...F29 }} }} {fragments}")));
        let fragments = fragments.replace(" on T ", " on Query ");
        assert!(
            depth_ok(&format!("{{ ...F29 }} {fragments}")),
            "at the root too"
        );
    }

    #[test]
    fn a_chain_of_fragments_past_thirty_two_is_refused_without_deep_recursion() {
        let chain = |n: usize, on: &str| {
            let mut doc = String::new();
            for i in 0..n {
                doc += &format!("fragment F{i} on {on} {{ ...F{} }}\n", i + 1);
            }
            doc + &format!("fragment F{n} on {on} {{ leaf }}\n")
        };
        assert!(depth_ok(&format!(
            "{{ lead {{ ...F0 }} }} {}",
            chain(8, "T")
        )));
        assert!(!depth_ok(&format!(
            "{{ lead {{ ...F0 }} }} {}",
            chain(8000, "T")
        )));
        assert!(!depth_ok(&format!("{{ ...F0 }} {}", chain(8000, "Query"))));
    }
}
