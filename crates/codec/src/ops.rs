//! The ops stream's events' table (issue 12): what operators did to the read models.

use leadflow_domain::ops::*;

use crate::lead::Upcaster;

/// Every upcaster of the ops events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(OpsEvent, "an ops event"; $($list)*);
    };
}

leadflow_domain::for_each_ops_event!(codec);
