//! The data subjects' events' table (issue 20), with versions and upcasters like the lead's.

use leadflow_domain::subject::*;

use crate::lead::Upcaster;

/// Every upcaster of the subject events (all are at version 1 so far).
pub const UPCASTERS: &[Upcaster] = &[];

macro_rules! codec {
    ($($list:tt)*) => {
        event_table!(SubjectEvent, "a data subject's event"; $($list)*);
    };
}

leadflow_domain::for_each_subject_event!(codec);
